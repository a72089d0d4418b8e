package box_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"image"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// Topics of the box the kill test configures (site s1/d1, default prefix).
const (
	killFootfall = egress.DefaultTopicPrefix + "/s1/d1/footfall"
	killStatus   = egress.DefaultTopicPrefix + "/s1/d1/status"
)

// TestKill9 runs the real veil binary against a real mosquitto and kills it
// with SIGKILL while closed count windows wait in its outbox (the broker
// is down), then runs it again (a new boot) and stops it with SIGTERM. It
// proves, end to end, the at-least-once promise of docs/ARCHITECTURE.md:
//
//   - every window the first run fsynced into the outbox but never got
//     acknowledged is delivered by the second run, unchanged;
//   - for each boot, the seqs head office receives are exactly 1..max with
//     no gap (duplicates allowed), and max covers every seq veil logged and
//     every entry on disk at the kill;
//   - after the clean shutdown the outbox holds nothing and quarantined
//     nothing, the retained status is offline, and every message on every
//     topic is a status string or a valid report of this box.
func TestKill9(t *testing.T) {
	start := time.Now()
	bin := testenv.BuildVeil(t)
	t.Logf("built veil in %s", time.Since(start).Round(time.Millisecond))

	br := mqtttest.Start(t, mqtttest.Options{})
	rec := mqtttest.Record(t, br)
	dir := t.TempDir()
	outbox := filepath.Join(dir, "outbox")
	cfg := writeKillConfig(t, dir, br.URL(), outbox, walkersScene(t, dir))

	// Boot 1: wait for a few delivered windows, then take the broker away
	// so that closed windows queue up in the outbox, and kill -9 veil.
	first := startVeil(t, bin, cfg)
	rec.Wait(20*time.Second, "3 footfall reports from the first run", func(ms []mqtttest.Message) bool {
		return len(topicMessages(ms, killFootfall)) >= 3
	})
	br.Stop()
	waitOutbox(t, outbox, 7*time.Second)
	// Kill right after a crossing, so the window still open holds it: only
	// the crossings journal can save it.
	before := len(first.logs(t, "crossing"))
	for deadline := time.Now().Add(10 * time.Second); len(first.logs(t, "crossing")) == before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	first.kill(t)
	onDisk := outboxEntries(t, outbox)
	t.Logf("first run killed after %s with %d windows in its outbox, crossings in them: %d",
		time.Since(first.started).Round(time.Millisecond), len(onDisk), peopleIn(onDisk))
	if len(onDisk) < 2 || peopleIn(onDisk) == 0 {
		t.Fatal("the outbox held no counted window at the kill; nothing worth replaying")
	}

	// Boot 2: the broker is back; veil replays boot 1's windows, counts
	// for a while (at least until the replay is seen) and stops cleanly.
	br.Start()
	if st, ok := br.Retained(killStatus, 500*time.Millisecond); ok {
		t.Logf("retained status while veil is dead and the broker is back: %q", st)
	}
	second := startVeil(t, bin, cfg)
	waitMessages(rec, 15*time.Second, func(ms []mqtttest.Message) bool {
		got := receivedIdents(ms)
		for id := range onDisk {
			if !got[id] {
				return false
			}
		}
		return countBoot(got, 2) >= 2
	})
	time.Sleep(time.Until(second.started.Add(3 * time.Second)))
	second.terminate(t, 10*time.Second)

	// Every seq each run logged as closed, and every entry that was on
	// disk at the kill, must arrive.
	want := map[ident]bool{}
	for id := range onDisk {
		want[id] = true
	}
	for _, v := range []*veilProc{first, second} {
		for _, id := range v.closed(t) {
			want[id] = true
		}
	}
	// Missing ones are reported below, one by one.
	msgs := waitMessages(rec, 5*time.Second, func(ms []mqtttest.Message) bool {
		got := receivedIdents(ms)
		for id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})

	// Only status strings and valid reports of this box, on its topics.
	byID := map[ident]egress.Report{}
	var statuses []string
	people := 0
	for _, m := range msgs {
		switch m.Topic {
		case killStatus:
			if m.Payload != egress.StatusOnline && m.Payload != egress.StatusOffline {
				t.Errorf("status topic carried %q", m.Payload)
			}
			statuses = append(statuses, m.Payload)
		case killFootfall:
			r, err := egress.ParseReport([]byte(m.Payload))
			if err != nil {
				t.Errorf("footfall topic carried something that is not a report: %q: %v", m.Payload, err)
				continue
			}
			if m.Retained {
				t.Errorf("report %d/%d was retained", r.Boot, r.Seq)
			}
			if r.Store != "s1" || r.Device != "d1" || r.Camera != "door" || r.Line != "entrance" {
				t.Errorf("report of another box, camera or line: %+v", r)
			}
			id := ident{r.Boot, r.Seq}
			if old, ok := byID[id]; ok && old != r {
				t.Errorf("boot %d seq %d received twice with different contents: %+v and %+v", r.Boot, r.Seq, old, r)
			}
			if _, ok := byID[id]; !ok {
				people += r.In + r.Out
			}
			byID[id] = r
		default:
			t.Errorf("message on unexpected topic %q: %q", m.Topic, m.Payload)
		}
	}
	if len(statuses) == 0 || statuses[len(statuses)-1] != egress.StatusOffline {
		t.Errorf("status messages %v, want offline last", statuses)
	}
	t.Logf("status messages: %v", statuses)

	// Per boot: seqs exactly 1..max, covering everything veil closed.
	seqs := map[uint64][]uint64{}
	for id := range byID {
		seqs[id.boot] = append(seqs[id.boot], id.seq)
	}
	if boots := slices.Sorted(maps.Keys(seqs)); !slices.Equal(boots, []uint64{1, 2}) {
		t.Errorf("reports of boots %v, want 1 and 2", boots)
	}
	for boot, ss := range seqs {
		slices.Sort(ss)
		for i, s := range ss {
			if s != uint64(i+1) {
				t.Errorf("boot %d: seqs %v, want 1..%d without gaps", boot, ss, ss[len(ss)-1])
				break
			}
		}
	}
	for id := range want {
		if _, ok := byID[id]; !ok {
			t.Errorf("boot %d seq %d was closed but never arrived", id.boot, id.seq)
		}
	}
	boxKey, err := consent.LoadKey(filepath.Join(dir, "box.key"))
	if err != nil {
		t.Fatal(err)
	}
	for id, got := range byID {
		if err := got.Verify(boxKey.Public().(ed25519.PublicKey)); err != nil {
			t.Errorf("boot %d seq %d: %v", id.boot, id.seq, err)
		}
	}
	for id, r := range onDisk {
		got := byID[id]
		got.Sig = "" // signed as it was sent; the outbox keeps it unsigned
		if got != r {
			t.Errorf("boot %d seq %d: on disk at the kill %+v, received %+v", id.boot, id.seq, r, got)
		}
	}
	if people == 0 {
		t.Error("no window counted anybody: the walkers were not counted")
	}
	// No crossing is lost, not even those of the window open at the kill:
	// every crossing veil logged (after journaling it) is in some report.
	crossed := len(first.logs(t, "crossing")) + len(second.logs(t, "crossing"))
	if people < crossed {
		t.Errorf("reports hold %d crossings, veil counted %d: crossings were lost", people, crossed)
	} else if people > crossed {
		t.Logf("reports hold %d crossings, veil counted %d: a window was queued twice (crash between outbox write and journal update)", people, crossed)
	}
	t.Logf("recovered from the journal at restart: %v", second.logs(t, "recovered crossings of windows open when veil last stopped without closing them"))
	t.Logf("received %d reports, %d unique: boot 1 up to seq %d, boot 2 up to seq %d; %d crossings",
		len(topicMessages(msgs, killFootfall)), len(byID), slices.Max(append(seqs[1], 0)), slices.Max(append(seqs[2], 0)), people)

	// Nothing left behind: the outbox is empty and quarantined nothing.
	box, err := egress.OpenOutbox(outbox, egress.OutboxOptions{Store: "s1", Device: "d1", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if n := box.Len(); n != 0 {
		t.Errorf("%d windows left in the outbox after a clean shutdown", n)
	}
	box.Close()
	if q, _ := os.ReadDir(filepath.Join(outbox, "quarantine")); len(q) != 0 {
		t.Errorf("%d outbox entries quarantined", len(q))
	}
	br.WaitRetained(killStatus, egress.StatusOffline)
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// waitMessages waits until cond holds for the messages rec has received,
// or timeout passes, and returns the messages. Unlike rec.Wait it does not
// fail the test: the checks that follow say what is missing.
func waitMessages(rec *mqtttest.Recorder, timeout time.Duration, cond func([]mqtttest.Message) bool) []mqtttest.Message {
	deadline := time.Now().Add(timeout)
	for {
		ms := rec.Messages()
		if cond(ms) || time.Now().After(deadline) {
			return ms
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ident is a report's identity, (boot, seq).
type ident struct{ boot, seq uint64 }

func topicMessages(ms []mqtttest.Message, topic string) []mqtttest.Message {
	var out []mqtttest.Message
	for _, m := range ms {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// receivedIdents are the identities of the valid reports in ms.
func receivedIdents(ms []mqtttest.Message) map[ident]bool {
	got := map[ident]bool{}
	for _, m := range topicMessages(ms, killFootfall) {
		if r, err := egress.ParseReport([]byte(m.Payload)); err == nil {
			got[ident{r.Boot, r.Seq}] = true
		}
	}
	return got
}

func countBoot(ids map[ident]bool, boot uint64) int {
	n := 0
	for id := range ids {
		if id.boot == boot {
			n++
		}
	}
	return n
}

// walkersScene writes an 8-second looping scene in which three people cross
// the vertical line x=320: two "in" (leftwards) about 1.8 s and 3 s into
// the loop, one "out" (rightwards) about 6.3 s in. They never overlap.
func walkersScene(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "door.avi")
	ws := []synth.Walker{
		{From: image.Pt(560, 250), To: image.Pt(80, 250), Start: 3, End: 33, Height: 100},
		{From: image.Pt(560, 160), To: image.Pt(80, 160), Start: 15, End: 45, Height: 80},
		{From: image.Pt(80, 300), To: image.Pt(560, 300), Start: 48, End: 78, Height: 105},
	}
	if err := synth.WriteWalkersAVI(path, image.Pt(640, 360), 10, 80, ws, 11); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeKillConfig(t *testing.T, dir, broker, outbox, video string) string {
	t.Helper()
	q := strconv.Quote
	yaml := strings.Join([]string{
		`site: {store: s1, device: d1}`,
		`footfall: {window: "1s", detector: motion, journal_dir: ` + q(filepath.Join(dir, "open-windows")) + `}`, // painted walkers: blobs
		`mqtt: {broker: ` + q(broker) + `}`,
		`outbox: {dir: ` + q(outbox) + `}`,
		`consent: {key_file: ` + q(filepath.Join(dir, "box.key")) + `}`,
		`http: {listen: ""}`,
		`log: {format: json, level: debug}`,
		`models: {dir: ` + q(testenv.ModelsDir()) + `}`,
		`detect: {threads: 1}`,
		`cameras:`,
		`  - name: door`,
		`    source: ` + q(video),
		`    loop: true`,
		`    lines: [{name: entrance, line: [320, 40, 320, 340]}]`,
	}, "\n") + "\n"
	path := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// veilProc is a running `veil run`.
type veilProc struct {
	cmd     *exec.Cmd
	started time.Time
	stderr  *testenv.Buffer // JSON log lines
	exited  chan struct{}   // closed when cmd has exited
	err     error           // from Wait, once exited is closed
}

// startVeil starts `veil run -c cfg` with no VEIL_* variables from the
// test's environment (env is added); t.Cleanup kills it if it still runs.
func startVeil(t testing.TB, bin, cfg string, env ...string) *veilProc {
	t.Helper()
	cmd := exec.Command(bin, "run", "-c", cfg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VEIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	v := &veilProc{cmd: cmd, stderr: &testenv.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout = v.stderr
	cmd.Stderr = v.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v.started = time.Now()
	go func() { v.err = cmd.Wait(); close(v.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-v.exited
		if t.Failed() {
			t.Logf("veil (pid %d) output:\n%s", cmd.Process.Pid, v.stderr.String())
		}
	})
	return v
}

// kill sends SIGKILL and waits for the process to die.
func (v *veilProc) kill(t *testing.T) {
	t.Helper()
	if err := v.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 veil: %v", err)
	}
	select {
	case <-v.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("veil still running 5 s after SIGKILL")
	}
	if ws, ok := v.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("veil ended with %v before it was killed", v.err)
	}
}

// terminate sends SIGTERM and checks that veil exits 0 within timeout,
// logging that it stopped with nothing pending.
func (v *veilProc) terminate(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	start := time.Now()
	select {
	case <-v.exited:
	case <-time.After(timeout):
		t.Fatalf("veil still running %s after SIGTERM", timeout)
	}
	if v.err != nil {
		t.Fatalf("veil did not exit cleanly after SIGTERM: %v", v.err)
	}
	t.Logf("veil stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	stopped := v.logs(t, "veil stopped")
	if len(stopped) != 1 {
		t.Fatalf("veil logged %q %d times, want once", "veil stopped", len(stopped))
	}
	if n, ok := stopped[0]["pending_windows"].(float64); !ok || n != 0 {
		t.Errorf("veil stopped with pending_windows %v, want 0", stopped[0]["pending_windows"])
	}
}

// logs returns veil's JSON log records with message msg.
func (v *veilProc) logs(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(v.stderr.String()))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue // stdout, or a line cut by SIGKILL
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			continue // the last line, cut by SIGKILL
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// closed returns the identity of every window veil logged as closed (the
// log line follows a successful, fsynced Outbox.Add).
func (v *veilProc) closed(t *testing.T) []ident {
	t.Helper()
	running := v.logs(t, "veil running")
	if len(running) != 1 {
		t.Fatalf("veil logged %q %d times, want once", "veil running", len(running))
	}
	boot, ok := running[0]["boot"].(float64)
	if !ok || boot < 1 {
		t.Fatalf("veil running with boot %v", running[0]["boot"])
	}
	var ids []ident
	for _, rec := range v.logs(t, "count window closed") {
		seq, ok := rec["seq"].(float64)
		if !ok || seq < 1 {
			t.Fatalf("count window closed with seq %v", rec["seq"])
		}
		ids = append(ids, ident{uint64(boot), uint64(seq)})
	}
	return ids
}

// outboxEntries reads the reports waiting in an outbox directory without
// opening it as an Outbox (which would start a boot and recover it). The
// directory may be in use: entries are renamed into place complete, and
// one removed meanwhile is skipped.
func outboxEntries(t *testing.T, dir string) map[ident]egress.Report {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[ident]egress.Report{}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), "e-") || !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := egress.ParseReport(data)
		if err != nil {
			t.Errorf("outbox entry %s: %v", de.Name(), err)
			continue
		}
		out[ident{r.Boot, r.Seq}] = r
	}
	return out
}

func peopleIn(rs map[ident]egress.Report) int {
	n := 0
	for _, r := range rs {
		n += r.In + r.Out
	}
	return n
}

// waitOutbox waits until at least two windows wait in the outbox directory
// and one of them counted somebody.
func waitOutbox(t *testing.T, dir string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rs := outboxEntries(t, dir)
		if len(rs) >= 2 && peopleIn(rs) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s with the broker down, the outbox holds %d windows counting %d people; want 2 windows and somebody counted", timeout, len(rs), peopleIn(rs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
