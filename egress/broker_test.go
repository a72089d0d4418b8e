package egress

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"sync"

	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// Helpers shared by the tests: egress's side of the real mosquitto broker
// and recording subscriber of testkit/mqtttest, and logs kept per test.

// testHQKey and testBoxKey are head office's and the box's keys in tests.
var (
	testHQKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{41}, ed25519.SeedSize))
	testBoxKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
)

// publisherOptions are MQTTOptions for a Publisher of b (credentials and
// TLS files as b needs them), with short intervals so that tests are quick.
func publisherOptions(b *mqtttest.Broker) MQTTOptions {
	o := MQTTOptions{Broker: b.URL(), ConnectTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond, AckTimeout: 5 * time.Second}
	bo := b.Options()
	if bo.Password {
		o.Username, o.Password = mqtttest.User, mqtttest.UserPassword
	}
	if bo.TLS {
		o.CAFile = b.PKI().CAFile
		if bo.RequireCert {
			o.CertFile, o.KeyFile = b.PKI().ClientCert, b.PKI().ClientKey
		}
	}
	return o
}

// reports checks every message the recorder has seen, on any topic: each
// must be StatusOnline or StatusOffline on the status topic, or a valid
// report for this store and device on the footfall topic, not retained.
// This is the package-level proof that only counts leave the box. It
// returns the reports in arrival order.
func reports(t *testing.T, rec *mqtttest.Recorder, footfall, status string) []Report {
	t.Helper()
	var out []Report
	for _, m := range rec.Messages() {
		switch m.Topic {
		case status:
			if m.Payload != StatusOnline && m.Payload != StatusOffline {
				t.Errorf("status topic carried %q", m.Payload)
			}
		case footfall:
			r, err := ParseReport([]byte(m.Payload))
			if err != nil {
				t.Errorf("footfall topic carried something that is not a report: %q: %v", m.Payload, err)
				continue
			}
			if m.Retained {
				t.Errorf("report %d/%d was retained", r.Boot, r.Seq)
			}
			if want := topicFor(r, "footfall"); m.Topic != want {
				t.Errorf("report for %s/%s on %s", r.Store, r.Device, m.Topic)
			}
			out = append(out, r)
		case strings.TrimSuffix(status, "status") + "ack":
			// Acknowledgements to the box: head office's, signed with a key
			// the box does not have, or a test's forgeries.
			if _, err := ParseAck([]byte(m.Payload), testHQKey.Public().(ed25519.PublicKey)); err != nil && !errors.Is(err, ErrAckSignature) {
				t.Errorf("ack topic carried something that is not head office's acknowledgement: %q: %v", m.Payload, err)
			}
		default:
			t.Errorf("message on unexpected topic %q: %q", m.Topic, m.Payload)
		}
	}
	return out
}

func topicFor(r Report, kind string) string {
	return DefaultTopicPrefix + "/" + r.Store + "/" + r.Device + "/" + kind
}

// waitReports waits until the recorder has seen a report for every
// identity in want, and returns all reports seen.
func waitReports(t *testing.T, rec *mqtttest.Recorder, footfall, status string, want []ident, timeout time.Duration) []Report {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := reports(t, rec, footfall, status)
		have := make(map[ident]bool, len(got))
		for _, r := range got {
			have[identOf(r)] = true
		}
		var missing []ident
		for _, id := range want {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d reports never arrived, first %v", timeout, len(missing), len(want), missing[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runPublisher runs a Publisher for box against b until the returned stop
// is called (or the test ends); stop checks that Run returned nil quickly.
func runPublisher(t *testing.T, o MQTTOptions, box *Outbox, log *slog.Logger) (*Publisher, func()) {
	t.Helper()
	p, err := NewPublisher(o, box, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			start := time.Now()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("Run took %s to return after cancel, want under 2 s", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLog returns a logger whose output the test prints if it fails, and
// the buffer it writes to. Unlike t.Log, it may be written after the test
// ends (paho calls handlers from its own goroutines).
func testLog(t *testing.T) (*slog.Logger, *testenv.Buffer) {
	buf := &testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}
