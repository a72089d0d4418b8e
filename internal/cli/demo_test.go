package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-edge/veil/internal/cli"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestDemoPrintsReports runs veil demo with 1-second windows until it has
// printed a few reports, then stops it as Ctrl-C would: it starts its
// embedded broker, and every count report it prints arrived over MQTT, in
// seq order, for the demo camera's two lines. It also starts veil-hq on
// that broker: logged in with the printed demo login, head office's
// dashboard has exactly the printed reports' sums and the demo box online.
func TestDemoPrintsReports(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	t.Setenv("VEIL_FOOTFALL_WINDOW", "1s")
	t.Setenv("VEIL_HTTP_LISTEN", "127.0.0.1:0")
	t.Setenv("VEIL_HQ_LISTEN", "127.0.0.1:0")
	t.Setenv("VEIL_MODELS_DIR", testenv.ModelsDir())
	day := time.Now().UTC().Format(time.DateOnly)
	demo := startDemo(t, "demo", "--duration", "5m", "--dir", filepath.Join(t.TempDir(), "demo"))

	dash := regexp.MustCompile(`head office dashboard \(veil-hq\): (http://127\.0\.0\.1:\d+/)  \(login (\S+) / (\S+); counts kept in \S+hq\.db\)`)
	liveView := regexp.MustCompile(`live view: http://\S+/  \(login operator / (\S+)\)`)
	var m, live []string
	demo.waitFor(t, "the dashboard's and the live view's addresses", func(out string) bool {
		m, live = dash.FindStringSubmatch(out), liveView.FindStringSubmatch(out)
		return m != nil && live != nil
	})
	base, user, password := m[1], m[2], m[3]
	if live[1] != password {
		t.Errorf("the live view's password %q is not the dashboard's %q: the demo makes one for both", live[1], password)
	}
	hq := hqLogin(t, base, user, password)

	// Wait until at least 4 reports (two lines, 1 s windows) are printed,
	// someone has been counted, and veil-hq has stored every report printed
	// so far: the same sums per line, as many reports from the demo box,
	// which is online.
	var (
		printed []demoReport
		totals  map[string][2]int64
		dev     device
	)
	demo.waitFor(t, "veil-hq's totals to equal the printed reports'", func(out string) bool {
		printed = demoReports(out)
		if len(printed) < 4 || !counted(printed) {
			return false
		}
		totals = hqTotals(t, hq, base, day)
		var ok bool
		if dev, ok = hqDevice(t, hq, base); !ok {
			return false
		}
		if again := demoReports(demo.out.String()); len(again) != len(printed) {
			return false // a report arrived while veil-hq was asked
		}
		return dev.Reports == int64(len(printed)) && dev.Status == "online" && equalSums(totals, printed)
	})
	hq.CloseIdleConnections()
	t.Logf("veil-hq has %d reports from %s/%s: %v", dev.Reports, dev.Store, dev.Device, totals)

	out, err := demo.stop(t)
	if err != nil {
		t.Fatalf("veil demo: %v\n%s", err, out)
	}
	if !strings.Contains(out, "embedded MQTT broker: tcp://127.0.0.1:") || !strings.Contains(out, "status  veil/v1/demo-store/demo-box/status  online") {
		t.Fatalf("no embedded broker or online status in:\n%s", out)
	}
	for i, r := range demoReports(out) {
		if r.seq != i+1 {
			t.Fatalf("report %d has seq %d, want %d: reports arrive in order, none lost:\n%s", i, r.seq, i+1, out)
		}
	}
	if !strings.Contains(out, "ack     veil/v1/demo-store/demo-box/ack  {") {
		t.Errorf("no acknowledgement from the demo's head office: the demo box should trust it:\n%s", out)
	}
	if !strings.Contains(out, "status  veil/v1/demo-store/demo-box/status  offline") {
		t.Errorf("no offline status at the end:\n%s", out)
	}
}

// runningDemo is veil demo running in the background.
type runningDemo struct {
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when the demo has returned err
	err    error
}

// startDemo runs veil with args until stop (or the test's end).
func startDemo(t *testing.T, args ...string) *runningDemo {
	t.Helper()
	root := cli.NewRoot()
	d := &runningDemo{out: new(syncBuffer), done: make(chan struct{})}
	var errOut syncBuffer
	root.SetOut(d.out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.err = root.ExecuteContext(ctx); close(d.done) }()
	t.Cleanup(func() {
		d.stop(t)
		if errOut.Len() > 0 {
			t.Logf("veil %s: stderr:\n%s", strings.Join(args, " "), errOut.String())
		}
	})
	return d
}

// stop stops the demo as Ctrl-C does and returns its output and error.
func (d *runningDemo) stop(t *testing.T) (string, error) {
	t.Helper()
	d.cancel()
	<-d.done
	return d.out.String(), d.err
}

// waitFor waits until cond holds for the demo's output so far, failing the
// test if the demo ends first or after a generous deadline.
func (d *runningDemo) waitFor(t *testing.T, what string, cond func(out string) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond(d.out.String()) {
		select {
		case <-d.done:
			t.Fatalf("veil demo ended (%v) while waiting for %s:\n%s", d.err, what, d.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 2 minutes:\n%s", what, d.out.String())
		}
	}
}

type demoReport struct {
	line    string
	in, out int64
	seq     int
}

var reportRE = regexp.MustCompile(`report  veil/v1/demo-store/demo-box/footfall  camera=plaza line=(crossing|road) \S+ in=(\d+) out=(\d+) \(boot 1, seq (\d+)\)`)

// demoReports are the count reports printed in out.
func demoReports(out string) []demoReport {
	var rs []demoReport
	for _, m := range reportRE.FindAllStringSubmatch(out, -1) {
		in, _ := strconv.ParseInt(m[2], 10, 64)
		o, _ := strconv.ParseInt(m[3], 10, 64)
		seq, _ := strconv.Atoi(m[4])
		rs = append(rs, demoReport{line: m[1], in: in, out: o, seq: seq})
	}
	return rs
}

// counted reports whether someone crossed a line in rs.
func counted(rs []demoReport) bool {
	for _, r := range rs {
		if r.in+r.out > 0 {
			return true
		}
	}
	return false
}

// equalSums reports whether totals (in and out by line) are the sums of rs.
func equalSums(totals map[string][2]int64, rs []demoReport) bool {
	sums := map[string][2]int64{}
	for _, r := range rs {
		s := sums[r.line]
		sums[r.line] = [2]int64{s[0] + r.in, s[1] + r.out}
	}
	if len(sums) != len(totals) {
		return false
	}
	for line, s := range sums {
		if totals[line] != s {
			return false
		}
	}
	return true
}

// hqLogin logs in to veil-hq's dashboard at base as a browser would.
func hqLogin(t *testing.T, base, user, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.PostForm(base+"login", url.Values{"user": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.HasSuffix(resp.Request.URL.Path, "/login") {
		t.Fatalf("login as %s: %s at %s", user, resp.Status, resp.Request.URL)
	}
	return c
}

// getJSON gets base+path into v.
func getJSON(t *testing.T, c *http.Client, base, path string, v any) {
	t.Helper()
	resp, err := c.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// hqTotals are the demo store's totals in and out by line from day (UTC)
// to today.
func hqTotals(t *testing.T, c *http.Client, base, day string) map[string][2]int64 {
	t.Helper()
	var resp struct {
		Totals []struct {
			Store, Camera, Line string
			Start               time.Time
			In, Out             int64
		}
	}
	q := url.Values{"period": {"custom"}, "from": {day}, "to": {time.Now().UTC().Format(time.DateOnly)}, "bucket": {"day"}}
	getJSON(t, c, base, "api/totals?"+q.Encode(), &resp)
	totals := map[string][2]int64{}
	for _, r := range resp.Totals {
		if r.Store != "demo-store" || r.Camera != "plaza" {
			t.Fatalf("veil-hq has totals for %s/%s, want only demo-store/plaza: %+v", r.Store, r.Camera, resp.Totals)
		}
		s := totals[r.Line]
		totals[r.Line] = [2]int64{s[0] + r.In, s[1] + r.Out}
	}
	return totals
}

type device struct {
	Store, Device, Status string
	Reports               int64
}

// hqDevice is veil-hq's only device, the demo box, once veil-hq knows it.
func hqDevice(t *testing.T, c *http.Client, base string) (device, bool) {
	t.Helper()
	var ds []device
	getJSON(t, c, base, "api/devices", &ds)
	if len(ds) == 0 {
		return device{}, false
	}
	if len(ds) != 1 || ds[0].Store != "demo-store" || ds[0].Device != "demo-box" {
		t.Fatalf("veil-hq's devices: %+v, want demo-store/demo-box only", ds)
	}
	return ds[0], true
}

// syncBuffer is a bytes.Buffer safe for the demo's writers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}
