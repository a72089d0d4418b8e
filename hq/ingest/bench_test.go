package ingest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/testkit/mqtttest"
)

// benchDevices is how many simulated boxes publish at once, each on its own
// MQTT connection and topic.
const benchDevices = 50

// BenchmarkIngest is head office's load test on loopback: benchDevices
// simulated boxes publish b.N footfall reports (QoS 1) to a real mosquitto
// as fast as it takes them, and one Ingest stores them in SQLite on disk.
// It reports sustained reports/s, from the first publish until the last
// report is stored, and the test process's peak resident memory
// (publishers, paho, ingest and SQLite together; mosquitto is a separate
// process). The broker allows 1000 unacknowledged messages per client, as
// docs/ARCHITECTURE.md advises for head office's broker.
//
//	go test ./hq/ingest -run '^$' -bench Ingest -benchtime 50000x
func BenchmarkIngest(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Options{MaxInflight: 1000, MaxQueued: -1})
	st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "hq.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	in := start(b, br, st, "hq-bench", nil)

	// Prepare every payload first: the clock measures the broker and head
	// office, not JSON encoding on the publishing side.
	type msg struct {
		topic   string
		payload []byte
	}
	perDevice := make([][]msg, benchDevices)
	for i := range b.N {
		d := i % benchDevices
		r := report("bench-shop-"+strconv.Itoa(d/5), "bench-"+strconv.Itoa(d), 1, uint64(i/benchDevices+1), i/benchDevices)
		perDevice[d] = append(perDevice[d], msg{footfallTopic(r), signed(b, r)})
	}
	clients := make([]mqtt.Client, benchDevices)
	for d := range clients {
		clients[d] = client(b, br, "bench-box-"+strconv.Itoa(d))
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, benchDevices)
	for d, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pending []mqtt.Token
			for _, m := range perDevice[d] {
				pending = append(pending, c.Publish(m.topic, 1, false, m.payload))
				if len(pending) == 200 { // a box's outbox keeps a bounded number in flight too
					if err := waitAll(pending); err != nil {
						errs <- err
						return
					}
					pending = pending[:0]
				}
			}
			if err := waitAll(pending); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for in.Status().Stored < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d reports stored after 5 minutes", in.Status().Stored, b.N)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reports/s")
	if kb, err := peakRSS(); err == nil {
		b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
	}
	b.ReportMetric(0, "ns/op") // per-report time is what reports/s says
}

func waitAll(toks []mqtt.Token) error {
	for _, t := range toks {
		if !t.WaitTimeout(time.Minute) {
			return fmt.Errorf("publish not acknowledged within a minute")
		}
		if err := t.Error(); err != nil {
			return err
		}
	}
	return nil
}

// peakRSS is this process's peak resident set size in KiB (VmHWM).
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
