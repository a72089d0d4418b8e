package egressproof

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The configuration the proof runs veil with.
const (
	proofStore   = "shop-17"
	proofDevice  = "egress-proof"
	proofCamera  = "entrance"
	brokerPort   = 1883
	runFor       = 12 * time.Second
	exitWithin   = 15 * time.Second
	minReports   = 4   // 2 s windows over runFor, two lines: far more are expected
	maxReportLen = 512 // a signed report is ~350 bytes; no frame fits in one
	// proofHQKey is a head-office public key: with it veil subscribes to
	// its acknowledgement topic, which the proof then covers too.
	proofHQKey = "ERERERERERERERERERERERERERERERERERERERERERE="
)

var proofLines = []string{"crossing", "road"}

// TestEgressProof runs the real veil binary (`veil run`) in a network
// namespace whose only link leads to a namespace with a mosquitto broker,
// captures every frame on that link with tcpdump from before veil starts
// until after it exits, and checks the capture against policy: the only
// data that leaves the box is MQTT footfall reports and status messages to
// the configured broker.
//
// What it does not cover: traffic over loopback inside the box (which
// leaves nothing), IPv6 (disabled on the link, so an IPv6 attempt fails
// before reaching the wire instead of showing here), and covert channels in
// kernel-written header fields (TCP options, IP ids, timing).
func TestEgressProof(t *testing.T) {
	tl := needTools(t)
	veil := testenv.BuildVeil(t)
	n := newTestnet(t, tl)
	startBroker(t, tl, n, brokerPort)
	capt := startCapture(t, tl, n)
	cfg := writeConfig(t, n)

	v := startProc(t, "veil", env(), tl.ip, "netns", "exec", n.box, veil, "run", "-c", cfg)
	select {
	case <-v.done:
		t.Fatalf("veil exited (%v) before it was stopped:\n%s", v.err, v.out)
	case <-time.After(runFor):
	}
	stopped := time.Now()
	if err := v.stop(syscall.SIGTERM, exitWithin); err != nil {
		t.Errorf("%v; veil's output:\n%s", err, v.out)
	} else if v.err != nil {
		t.Errorf("veil exited with %v after SIGTERM; its output:\n%s", v.err, v.out)
	} else {
		t.Logf("veil exited %s after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	}
	recs := capt.stop(t)

	frames := make([]frame, 0, len(recs))
	for i, r := range recs {
		f, err := decodeFrame(r)
		if err != nil {
			t.Errorf("frame %d: %v", i, err)
			continue
		}
		frames = append(frames, f)
	}
	p := policy{
		BoxMAC: n.boxMAC, HQMAC: n.hqMAC, Box: n.boxAddr, HQ: n.hqAddr, BrokerPort: brokerPort,
		ClientID: "veil-" + proofDevice, Prefix: egress.DefaultTopicPrefix,
		Store: proofStore, Device: proofDevice, Camera: proofCamera, Lines: proofLines,
		MaxReport: maxReportLen,
		AckTopic:  egress.AckTopic(egress.DefaultTopicPrefix, proofStore, proofDevice),
	}
	boxKey, err := consent.LoadKey(filepath.Join(filepath.Dir(cfg), "box.key"))
	if err != nil {
		t.Fatal(err)
	}
	p.BoxKey = boxKey.Public().(ed25519.PublicKey)
	vd := p.check(frames)
	t.Logf("egress summary:\n%s", vd.summary())
	for _, s := range vd.Violations {
		t.Errorf("egress violation: %s", s)
	}
	if len(vd.Reports) < minReports {
		t.Errorf("%d footfall reports left the box, want at least %d: the proof would be vacuous", len(vd.Reports), minReports)
	}
	if len(vd.Subscribes) == 0 {
		t.Errorf("veil never subscribed to head office's acknowledgements; the proof would not cover it")
	}
	if vd.Conns == 0 {
		t.Errorf("veil never connected to the broker")
	}
	if vd.StreamBytes != vd.MQTTBytes || vd.StreamBytes == 0 {
		t.Errorf("box→broker stream of %d bytes, of which %d are MQTT packets", vd.StreamBytes, vd.MQTTBytes)
	}
	if t.Failed() {
		t.Logf("veil's output:\n%s", v.out)
	}
}

// writeConfig writes veil's configuration for the proof: one looping
// camera with two counting lines, 2 s windows, the broker in hq.
func writeConfig(t *testing.T, n *testnet) string {
	t.Helper()
	dir := t.TempDir()
	var lines strings.Builder
	for _, l := range [...]struct {
		name string
		xy   [4]int
	}{{proofLines[0], [4]int{350, 150, 350, 450}}, {proofLines[1], [4]int{520, 260, 768, 260}}} {
		fmt.Fprintf(&lines, "      - {name: %s, line: [%d, %d, %d, %d]}\n", l.name, l.xy[0], l.xy[1], l.xy[2], l.xy[3])
	}
	cfg := fmt.Sprintf(`log:
  level: info
models:
  dir: %q
site:
  store: %s
  device: %s
footfall:
  window: "2s"
  journal_dir: %q
mqtt:
  broker: "tcp://%s:%d"
  head_office_key: %q
consent:
  key_file: %q
outbox:
  dir: %q
http:
  listen: "127.0.0.1:0"
cameras:
  - name: %s
    source: %q
    loop: true
    lines:
%s`, testenv.ModelsDir(), proofStore, proofDevice, filepath.Join(dir, "open-windows"), n.hqAddr, brokerPort,
		proofHQKey, filepath.Join(dir, "box.key"), filepath.Join(dir, "outbox"), proofCamera, testenv.VTest, lines.String())
	path := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
