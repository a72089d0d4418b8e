package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestPublisherOptions lists option mistakes NewPublisher rejects; TLS
// errors name the file.
func TestPublisherOptions(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	box := openBox(t, t.TempDir(), 0)
	const tlsURL = "ssl://127.0.0.1:8883"
	for _, tc := range []struct {
		name string
		o    MQTTOptions
		want []string // all in the error
	}{
		{"no broker", MQTTOptions{}, []string{`mqtt broker ""`, "allowed tcp://"}},
		{"http broker", MQTTOptions{Broker: "http://hq:80"}, []string{`scheme "http"`}},
		{"websocket broker", MQTTOptions{Broker: "ws://hq:80"}, []string{`scheme "ws"`}},
		{"no port", MQTTOptions{Broker: "tcp://hq"}, []string{`"tcp://hq" is not a broker URL`}},
		{"bad port", MQTTOptions{Broker: "tcp://hq:99999"}, []string{"is not a broker URL"}},
		{"path", MQTTOptions{Broker: "tcp://hq:1883/x"}, []string{"is not a broker URL"}},
		{"credentials in URL", MQTTOptions{Broker: "tcp://u:p@hq:1883"}, []string{"credentials in the URL"}},
		{"wildcard prefix", MQTTOptions{Broker: "tcp://hq:1883", TopicPrefix: "veil/#"}, []string{`mqtt topic prefix "veil/#"`}},
		{"empty level prefix", MQTTOptions{Broker: "tcp://hq:1883", TopicPrefix: "veil//v1"}, []string{"mqtt topic prefix", "empty"}},
		{"negative retry", MQTTOptions{Broker: "tcp://hq:1883", RetryInterval: -time.Second}, []string{"mqtt retry interval: -1s is negative"}},
		{"CA on plain broker", MQTTOptions{Broker: "tcp://hq:1883", CAFile: pki.CAFile}, []string{"is not TLS", "ssl://"}},
		{"CA file missing", MQTTOptions{Broker: tlsURL, CAFile: missing}, []string{"mqtt CA file", missing, "no such file"}},
		{"CA file not PEM", MQTTOptions{Broker: tlsURL, CAFile: garbage}, []string{"mqtt CA file " + garbage, "no PEM certificate"}},
		{"cert without key", MQTTOptions{Broker: tlsURL, CertFile: pki.ClientCert}, []string{pki.ClientCert, "without a key file"}},
		{"key without cert", MQTTOptions{Broker: tlsURL, KeyFile: pki.ClientKey}, []string{pki.ClientKey, "without a certificate file"}},
		{"cert file missing", MQTTOptions{Broker: tlsURL, CertFile: missing, KeyFile: pki.ClientKey}, []string{"mqtt client certificate file", missing}},
		{"key file missing", MQTTOptions{Broker: tlsURL, CertFile: pki.ClientCert, KeyFile: missing}, []string{"mqtt client key file", missing}},
		{"cert not PEM", MQTTOptions{Broker: tlsURL, CertFile: garbage, KeyFile: pki.ClientKey}, []string{garbage, pki.ClientKey}},
		{"key does not match", MQTTOptions{Broker: tlsURL, CertFile: pki.ClientCert, KeyFile: pki.OtherKey}, []string{pki.ClientCert, pki.OtherKey, "does not match"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPublisher(tc.o, box, nil)
			if err == nil {
				t.Fatal("NewPublisher accepted the options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewPublisher = %v, want it to contain %q", err, w)
				}
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		p, err := NewPublisher(MQTTOptions{Broker: "mqtts://hq.example:8883", CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, box, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f, s := p.Topics(); f != "veil/v1/shop-1/box-1/footfall" || s != "veil/v1/shop-1/box-1/status" {
			t.Errorf("Topics() = %s, %s", f, s)
		}
		if p.o.ClientID != "veil-box-1" || p.o.RetryInterval != DefaultRetryInterval || p.o.ConnectTimeout != DefaultConnectTimeout || p.broker != "mqtts://hq.example:8883" {
			t.Errorf("defaults not applied: %+v", p.o)
		}
	})
}

// TestPublishDelivers is scenario 1 over each kind of broker security:
// windows added before and while the Publisher runs all arrive, exactly as
// added, the outbox ends empty, the status goes online then (retained)
// offline, and nothing but status strings and reports is seen on any topic.
func TestPublishDelivers(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    mqtttest.Options
	}{
		{"plain", mqtttest.Options{}},
		{"password", mqtttest.Options{Password: true}},
		{"tls", mqtttest.Options{TLS: true}},
		{"mutual tls", mqtttest.Options{TLS: true, RequireCert: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := mqtttest.Start(t, tc.o)
			rec := mqtttest.Record(t, br)
			box := openBox(t, t.TempDir(), 0)
			var added []Report
			for i := range 5 { // waiting before the publisher starts
				added = append(added, mustAdd(t, box, window("cam-1", "door", i, i, 1)))
			}
			log, _ := testLog(t)
			p, stop := runPublisher(t, publisherOptions(br), box, log)
			footfall, status := p.Topics()
			for i := 5; i < 20; i++ {
				added = append(added, mustAdd(t, box, window("cam-2", "gate", i, 2*i, i%4)))
			}
			got := waitReports(t, rec, footfall, status, idents(added), 10*time.Second)
			byID := map[ident]Report{}
			for _, r := range got {
				byID[identOf(r)] = r
			}
			for _, a := range added {
				if r := byID[identOf(a)]; r != a {
					t.Errorf("received %+v, added %+v", r, a)
				}
			}
			waitFor(t, 5*time.Second, "the outbox to empty", func() bool { return box.Len() == 0 })
			st := p.Status()
			if !st.Connected || st.Pending != 0 || st.LastPublish.IsZero() {
				t.Errorf("Status() = %+v, want connected, nothing pending, a last publish", st)
			}
			stop()
			br.WaitRetained(status, StatusOffline)
			var statuses []string
			for _, m := range rec.Messages() {
				if m.Topic == status {
					statuses = append(statuses, m.Payload)
				}
			}
			if len(statuses) < 2 || statuses[0] != StatusOnline || statuses[len(statuses)-1] != StatusOffline {
				t.Errorf("status messages %v, want online first and offline last", statuses)
			}
			reports(t, rec, footfall, status) // every message on every topic is allowed
		})
	}
}

// TestPublishBrokerOutage is scenario 2: the broker stops for several
// windows, which are added while it is down, and starts again; every
// window arrives and seq has no gaps.
func TestPublishBrokerOutage(t *testing.T) {
	br := mqtttest.Start(t, mqtttest.Options{})
	rec := mqtttest.Record(t, br)
	box := openBox(t, t.TempDir(), 0)
	log, _ := testLog(t)
	p, stop := runPublisher(t, publisherOptions(br), box, log)
	footfall, status := p.Topics()
	var added []Report
	for i := range 3 {
		added = append(added, mustAdd(t, box, window("cam", "door", i, 1, 2)))
	}
	waitReports(t, rec, footfall, status, idents(added), 10*time.Second)

	br.Stop()
	waitFor(t, 5*time.Second, "the publisher to notice the outage", func() bool { return !p.Status().Connected })
	for i := 3; i < 8; i++ {
		added = append(added, mustAdd(t, box, window("cam", "door", i, i, 0)))
	}
	time.Sleep(300 * time.Millisecond) // a few retry intervals with the broker down
	if st := p.Status(); st.Pending != 5 || st.Connected || st.LastError == "" {
		t.Errorf("during the outage Status() = %+v, want 5 pending, disconnected, an error", st)
	}

	br.Start()
	got := waitReports(t, rec, footfall, status, idents(added), 15*time.Second)
	seqs := map[uint64]bool{}
	for _, r := range got {
		seqs[r.Seq] = true
	}
	for seq := uint64(1); seq <= 8; seq++ {
		if !seqs[seq] {
			t.Errorf("seq %d missing", seq)
		}
	}
	waitFor(t, 5*time.Second, "the outbox to empty", func() bool { return box.Len() == 0 })
	stop()
}

// TestPublishShutdownBrokerDown checks that Run returns promptly on cancel
// when the broker cannot be reached, keeps the reports, and reports the
// connection error in Status.
func TestPublishShutdownBrokerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	box := openBox(t, t.TempDir(), 0)
	mustAdd(t, box, window("c", "l", 0, 1, 1))
	log, _ := testLog(t)
	p, stop := runPublisher(t, MQTTOptions{Broker: "tcp://" + addr, RetryInterval: 100 * time.Millisecond, ConnectTimeout: time.Second}, box, log)
	waitFor(t, 5*time.Second, "a connection error", func() bool { return p.Status().LastError != "" })
	stop() // checks Run returns nil within 2 s
	if st := p.Status(); st.Connected || st.Pending != 1 || !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("Status() = %+v, want disconnected, 1 pending, connection refused", st)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

// TestPublishCorrupt is scenario 4: one entry truncated, one overwritten
// with garbage, one emptied; they are quarantined with a warning naming
// each, and the rest are delivered.
func TestPublishCorrupt(t *testing.T) {
	br := mqtttest.Start(t, mqtttest.Options{})
	rec := mqtttest.Record(t, br)
	dir := t.TempDir()
	box := openBox(t, dir, 0)
	var added []Report
	for i := range 6 {
		added = append(added, mustAdd(t, box, window("cam", "door", i, i, 1)))
	}
	box.Close()
	damage := map[uint64]func(path string) error{
		2: func(p string) error { return os.Truncate(p, 25) },
		4: func(p string) error { return os.WriteFile(p, []byte("\x00\x01 garbage {\"in\":"), 0o600) },
		5: func(p string) error { return os.Truncate(p, 0) },
	}
	var good []Report
	for _, r := range added {
		if f := damage[r.Seq]; f != nil {
			if err := f(filepath.Join(dir, entryName(identOf(r)))); err != nil {
				t.Fatal(err)
			}
		} else {
			good = append(good, r)
		}
	}
	log, buf := testLog(t)
	box, err := OpenOutbox(dir, OutboxOptions{Device: "box-1", Store: "shop-1", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	for seq := range damage {
		name := entryName(ident{1, seq})
		if _, err := os.Stat(filepath.Join(dir, quarantineDir, name)); err != nil {
			t.Errorf("seq %d not quarantined: %v", seq, err)
		}
		if !strings.Contains(buf.String(), filepath.Join(dir, name)) {
			t.Errorf("no warning names %s:\n%s", name, buf.String())
		}
	}
	p, stop := runPublisher(t, publisherOptions(br), box, log)
	footfall, status := p.Topics()
	got := waitReports(t, rec, footfall, status, idents(good), 10*time.Second)
	waitFor(t, 5*time.Second, "the outbox to empty", func() bool { return box.Len() == 0 })
	stop()
	for _, r := range got {
		if damage[r.Seq] != nil {
			t.Errorf("damaged entry seq %d was sent: %+v", r.Seq, r)
		}
	}
}

// TestPublishMerged fills a small outbox with no broker reachable, so
// that windows are merged, then delivers it: the in and out totals head
// office receives equal those added, per line.
func TestPublishMerged(t *testing.T) {
	br := mqtttest.Start(t, mqtttest.Options{})
	rec := mqtttest.Record(t, br)
	box := openBox(t, t.TempDir(), 4)
	var added []Counts
	for i := range 60 {
		c := window("cam", []string{"door", "gate"}[i%2], i/2, i%7, i%5)
		added = append(added, c)
		if _, err := box.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	stored := pending(t, box)
	log, _ := testLog(t)
	p, stop := runPublisher(t, publisherOptions(br), box, log)
	footfall, status := p.Topics()
	got := waitReports(t, rec, footfall, status, idents(stored), 10*time.Second)
	waitFor(t, 5*time.Second, "the outbox to empty", func() bool { return box.Len() == 0 })
	stop()
	unique := map[ident]Report{}
	for _, r := range got {
		unique[identOf(r)] = r // head office's de-duplication
	}
	if got, want := sums(slices.Collect(mapValues(unique))), sums(added); !mapsEqual(got, want) {
		t.Errorf("delivered totals %v, added %v", got, want)
	}
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// Environment of the crash child (see crashChild).
const (
	childEnv       = "VEIL_EGRESS_TEST_CHILD" // set: run crashChild
	childDirEnv    = "VEIL_EGRESS_TEST_DIR"
	childBrokerEnv = "VEIL_EGRESS_TEST_BROKER"
	childCountEnv  = "VEIL_EGRESS_TEST_COUNT"
	childDrainEnv  = "VEIL_EGRESS_TEST_DRAIN" // set: wait for the outbox to empty, then stop cleanly
	childQueueEnv  = "VEIL_EGRESS_TEST_QUEUE" // windows to add before the Publisher starts
)

// crashChild is the child process of TestPublishCrash: it opens the outbox,
// adds windows as fast as it can and prints "added BOOT SEQ" after each Add
// returns; after the first few it starts a Publisher, so that there is a
// backlog to send while it goes on adding. Its parent kills it, or it
// drains the outbox and stops cleanly.
func crashChild() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	box, err := OpenOutbox(os.Getenv(childDirEnv), OutboxOptions{Device: "crash-box", Store: "shop-1", Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p, err := NewPublisher(MQTTOptions{Broker: os.Getenv(childBrokerEnv), RetryInterval: 100 * time.Millisecond}, box, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	n, _ := strconv.Atoi(os.Getenv(childCountEnv))
	queue, _ := strconv.Atoi(os.Getenv(childQueueEnv))
	start := t0.Add(time.Duration(box.Boot()) * 24 * time.Hour)
	for i := range n {
		if i == queue {
			go func() { done <- p.Run(ctx) }()
		}
		s := start.Add(time.Duration(i) * time.Minute)
		r, err := box.Add(Counts{Camera: "cam", Line: "door", Start: s, End: s.Add(time.Minute), In: i % 4, Out: i % 3})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Printf("added %d %d\n", r.Boot, r.Seq) // os.Stdout is unbuffered: out before the next Add
	}
	if os.Getenv(childDrainEnv) != "" {
		for deadline := time.Now().Add(20 * time.Second); box.Len() > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "outbox not drained within 20 s")
				return 2
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	box.Close()
	fmt.Println("done")
	return 0
}

// child is a running crashChild.
type child struct {
	cmd    *exec.Cmd
	lines  chan ident // one per "added" line, closed at EOF
	done   bool       // printed "done"
	stderr *testenv.Buffer
}

func startChild(t *testing.T, dir, broker string, n, queue int, drain bool) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDirEnv+"="+dir, childBrokerEnv+"="+broker, childCountEnv+"="+strconv.Itoa(n), childQueueEnv+"="+strconv.Itoa(queue))
	if drain {
		cmd.Env = append(cmd.Env, childDrainEnv+"=1")
	}
	c := &child{cmd: cmd, lines: make(chan ident, n), stderr: &testenv.Buffer{}}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("child stderr:\n%s", c.stderr.String())
		}
	})
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var id ident
			if _, err := fmt.Sscanf(sc.Text(), "added %d %d", &id.boot, &id.seq); err == nil {
				c.lines <- id
			} else if sc.Text() == "done" {
				c.done = true // read after lines is closed
			}
		}
	}()
	return c
}

// wait collects every identity the child printed until it exits.
func (c *child) wait(t *testing.T, timeout time.Duration) []ident {
	t.Helper()
	var ids []ident
	deadline := time.After(timeout)
	for {
		select {
		case id, ok := <-c.lines:
			if !ok {
				err := c.cmd.Wait()
				var exit *exec.ExitError
				if err != nil && !errors.As(err, &exit) {
					t.Fatal(err)
				}
				return ids
			}
			ids = append(ids, id)
		case <-deadline:
			t.Fatalf("child still running after %s", timeout)
		}
	}
}

// TestPublishCrash is scenario 3: a child process adds windows rapidly
// while publishing and is killed with SIGKILL; the subscriber then sees the
// retained offline last will; a second run on the same directory (a new
// boot) replays the rest. Every (boot, seq) the child was ever given by Add
// arrives; duplicates are allowed, gaps are not.
func TestPublishCrash(t *testing.T) {
	br := mqtttest.Start(t, mqtttest.Options{})
	rec := mqtttest.Record(t, br)
	dir := t.TempDir()
	footfall := DefaultTopicPrefix + "/shop-1/crash-box/footfall"
	status := DefaultTopicPrefix + "/shop-1/crash-box/status"

	// The first run queues 300 windows, starts publishing and goes on
	// adding; it is killed as soon as the first report arrives, so that
	// there is a backlog on disk and reports in flight.
	first := startChild(t, dir, br.URL(), 5000, 300, false)
	var ids []ident
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case id, ok := <-first.lines:
			if !ok {
				t.Fatalf("child exited early: %v\n%s", first.cmd.Wait(), first.stderr.String())
			}
			ids = append(ids, id)
			continue
		default:
		}
		if len(ids) >= 300 && len(reports(t, rec, footfall, status)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the child has added %d windows and %d reports arrived", len(ids), len(reports(t, rec, footfall, status)))
		}
		time.Sleep(100 * time.Microsecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, first.wait(t, 5*time.Second)...)
	time.Sleep(100 * time.Millisecond) // reports still on their way to the recorder
	delivered := map[ident]bool{}
	for _, r := range reports(t, rec, footfall, status) {
		delivered[identOf(r)] = true
	}
	t.Logf("first run: %d windows added, %d delivered before SIGKILL", len(ids), len(delivered))
	br.WaitRetained(status, StatusOffline) // the last will

	second := startChild(t, dir, br.URL(), 10, 0, true)
	more := second.wait(t, 30*time.Second)
	if !second.done {
		t.Fatalf("second run did not finish cleanly:\n%s", second.stderr.String())
	}
	if len(more) != 10 || more[0].boot != ids[0].boot+1 || more[0].seq != 1 {
		t.Fatalf("second run added %v, want 10 windows of boot %d from seq 1", more, ids[0].boot+1)
	}
	ids = append(ids, more...)
	got := waitReports(t, rec, footfall, status, ids, 10*time.Second)
	seen := map[ident]int{}
	for _, r := range got {
		seen[identOf(r)]++
	}
	last := ids[len(ids)-len(more)-1] // the first run's last printed window
	for id := range seen {
		// The one window whose Add returned just before SIGKILL, but
		// not its line, is the only other one that can exist.
		if !slices.Contains(ids, id) && id != (ident{last.boot, last.seq + 1}) {
			t.Errorf("received %v, which Add never returned", id)
		}
	}
	t.Logf("%d windows, %d reports received (%d duplicates)", len(ids), len(got), len(got)-len(seen))
	br.WaitRetained(status, StatusOffline) // a clean stop this time
	box := openBox(t, dir, 0)
	if box.Len() != 0 {
		t.Errorf("%d reports left in the outbox", box.Len())
	}
}
