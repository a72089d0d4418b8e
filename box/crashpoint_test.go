package box_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/internal/crashpoint"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestKillClosingWindow kills veil with SIGKILL at each step of moving a
// closed count window into the outbox (its identity journaled; stored in
// the outbox but still in the journal) and of the next start's recovery of
// open windows (identities journaled; stored but still in the journal),
// then runs it normally to the end. Head office, de-duplicating on
// (device, boot, seq) as veil-hq does, must hold every window exactly once:
// one identity per window and exactly the crossings veil logged.
// Before windows had identities that survive the crash, a kill at
// window-stored queued the window again under a new seq.
func TestKillClosingWindow(t *testing.T) {
	bin := testenv.BuildVeilTags(t, "crashpoints")
	for _, point := range []string{"window-reserved", "window-stored", "recover-reserved", "recover-stored"} {
		t.Run(point, func(t *testing.T) {
			br := mqtttest.Start(t, mqtttest.Options{})
			rec := mqtttest.Record(t, br)
			dir := t.TempDir()
			cfg := writeKillConfig(t, dir, br.URL(), filepath.Join(dir, "outbox"), walkersScene(t, dir))
			var runs []*veilProc
			if strings.HasPrefix(point, "recover-") {
				// Leave crossings of an open window in the journal.
				v := startVeil(t, bin, cfg)
				runs = append(runs, v)
				waitLog(t, v, "crossing", 1, 30*time.Second)
				n := len(v.logs(t, "crossing"))
				waitLog(t, v, "crossing", n+1, 10*time.Second)
				v.kill(t)
			}
			crashed := startVeil(t, bin, cfg, crashpoint.Env+"="+point)
			runs = append(runs, crashed)
			select {
			case <-crashed.exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("veil did not reach crash point %s within 60 s", point)
			}
			if ws, ok := crashed.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL ||
				!strings.Contains(crashed.stderr.String(), `"point":"`+point+`"`) {
				t.Fatalf("veil ended with %v, not at crash point %s", crashed.err, point)
			}
			last := startVeil(t, bin, cfg)
			runs = append(runs, last)
			waitLog(t, last, "count window closed", 3, 30*time.Second)
			last.terminate(t, 10*time.Second)

			logged := 0
			for _, v := range runs {
				logged += len(v.logs(t, "crossing"))
			}
			// A window queued twice carries the same span and counts under
			// two identities; windows of different boots may share a start
			// (windows are aligned to the clock) and add up.
			type window struct {
				camera, line, start, end string
				in, out                  int
			}
			msgs := waitMessages(rec, 10*time.Second, func(ms []mqtttest.Message) bool {
				n := 0
				for _, m := range topicMessages(ms, killFootfall) {
					if r, err := egress.ParseReport([]byte(m.Payload)); err == nil {
						n += r.In + r.Out
					}
				}
				return n >= logged
			})
			ids := map[window]map[ident]egress.Report{}
			people := 0
			for _, m := range topicMessages(msgs, killFootfall) {
				r, err := egress.ParseReport([]byte(m.Payload))
				if err != nil {
					t.Fatalf("not a report: %q", m.Payload)
				}
				w := window{r.Camera, r.Line, r.Start.Format(time.RFC3339Nano), r.End.Format(time.RFC3339Nano), r.In, r.Out}
				id := ident{r.Boot, r.Seq}
				if ids[w] == nil {
					ids[w] = map[ident]egress.Report{}
				}
				if old, ok := ids[w][id]; ok {
					if old != r {
						t.Errorf("%v received twice with different contents", id)
					}
					continue
				}
				ids[w][id] = r
				people += r.In + r.Out
			}
			for w, byID := range ids {
				if len(byID) > 1 {
					t.Errorf("window %v stored under %d identities: %v", w, len(byID), byID)
				}
			}
			if people != logged {
				t.Errorf("head office holds %d crossings, veil logged %d", people, logged)
			}
			t.Logf("%s: %d runs, %d windows, %d crossings logged, %d at head office", point, len(runs), len(ids), logged, people)
		})
	}
}

// waitLog waits until v has logged msg at least n times.
func waitLog(t *testing.T, v *veilProc, msg string, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); len(v.logs(t, msg)) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("veil logged %q %d times in %s, want %d", msg, len(v.logs(t, msg)), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
