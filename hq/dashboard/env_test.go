package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/web"
)

const (
	testUser = "hq"
	testPW   = "correct horse"
)

// testUsers hashes at bcrypt.MinCost so tests stay fast.
var testUsers = sync.OnceValue(func() []web.User {
	h, err := bcrypt.GenerateFromPassword([]byte(testPW), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return []web.User{{Name: testUser, PasswordHash: string(h)}}
})

// The fixture's clock: today is 2026-03-14 (UTC), now is 15:30 that day.
var (
	today   = time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	testNow = today.Add(15*time.Hour + 30*time.Minute)
)

// fixture is the known reports: stores s1 (cameras door and back, lines
// main and side on door), s2 (door), s3 (only 7 to 13 days ago, so only in
// the previous period of "last 7 days") and s4 (only in the last 7 days, so
// "new"), three windows a day for the last 14 days and one 40 days ago,
// plus a window at 23:59:30 that ends the next day (it counts on its start
// day). s2-a's reports are unsigned; the others carry a signature.
func fixture() []egress.Report {
	type cam struct{ store, device, camera, line string }
	cams := []cam{
		{"s1", "s1-a", "door", "main"}, {"s1", "s1-a", "door", "side"}, {"s1", "s1-b", "back", "main"},
		{"s2", "s2-a", "door", "main"}, {"s3", "s3-a", "door", "main"}, {"s4", "s4-a", "door", "main"},
	}
	seq := map[string]uint64{}
	var rs []egress.Report
	add := func(c cam, start time.Time, dur time.Duration, in, out int64) {
		seq[c.device]++
		sig := strings.Repeat("A", 86) // the store notes only whether there is one
		if c.device == "s2-a" {
			sig = "" // allowed unsigned
		}
		rs = append(rs, egress.Report{
			Device: c.device, Store: c.store, Camera: c.camera, Line: c.line,
			Start: start, End: start.Add(dur), In: int(in), Out: int(out), Boot: 1, Seq: seq[c.device], Sig: sig,
		})
	}
	for day := -13; day <= 0; day++ {
		for i, c := range cams {
			if c.store == "s3" && day > -7 || c.store == "s4" && day <= -7 {
				continue
			}
			for _, h := range []int{8, 12, 17} {
				start := today.AddDate(0, 0, day).Add(time.Duration(h)*time.Hour + 10*time.Minute)
				in := int64(3*(day+14) + h + 2*i)
				add(c, start, 5*time.Minute, in, in-int64(h%4))
			}
		}
	}
	add(cams[0], today.AddDate(0, 0, -40).Add(9*time.Hour), time.Minute, 1000, 999)
	add(cams[3], today.AddDate(0, 0, -2).Add(23*time.Hour+59*time.Minute+30*time.Second), time.Minute, 7, 5)
	return rs
}

// sumsOf sums the fixture's reports whose Start is in [from, to) and that
// keep(r) selects, per store and overall.
func sumsOf(rs []egress.Report, from, to time.Time, keep func(egress.Report) bool) (map[string]sums, sums) {
	per := map[string]sums{}
	var all sums
	for _, r := range rs {
		if r.Start.Before(from) || !r.Start.Before(to) || keep != nil && !keep(r) {
			continue
		}
		s := per[r.Store]
		s.add(int64(r.In), int64(r.Out))
		per[r.Store] = s
		all.add(int64(r.In), int64(r.Out))
	}
	return per, all
}

type env struct {
	t     *testing.T
	d     *Dashboard
	st    *store.SQLite
	ts    *httptest.Server
	reg   *prometheus.Registry
	calls []egress.Report
}

// newEnv serves a Dashboard over a real SQLite store holding the fixture,
// with the test user, the fixture's clock unless o.Now is set, a /healthz
// and a public handler at /c/.
func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "hq.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rs := fixture()
	if _, err := st.Add(ctx, rs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs { // s1-b sends another report under its first one's identity
		if r.Device == "s1-b" {
			r.In++
			if out, err := st.Add(ctx, r); err != nil || out[0] != store.Conflict {
				t.Fatalf("conflicting copy: %v, %v", out, err)
			}
			break
		}
	}
	if err := st.SetStatus(ctx, "s1", "s1-a", true, testNow.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.SetStatus(ctx, "s2", "s2-a", false, testNow.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.SetStatus(ctx, "s5", "s5-a", true, testNow.Add(-time.Minute)); err != nil { // status, no report yet
		t.Fatal(err)
	}
	e := &env{t: t, st: st, reg: prometheus.NewRegistry(), calls: rs}
	o.Store, o.Users, o.Metrics = st, testUsers(), e.reg
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	o.Health = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	d, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	d.HandlePublic("GET /c/{code}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "public %s", r.PathValue("code"))
	}))
	e.d = d
	e.ts = httptest.NewServer(d.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

// client is a browser: its own cookie jar, redirects not followed.
func (e *env) client() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// loggedIn returns a client with a session.
func (e *env) loggedIn() *http.Client {
	e.t.Helper()
	c := e.client()
	form := url.Values{"user": {testUser}, "password": {testPW}}
	resp, err := c.Post(e.ts.URL+"/login", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	return c
}

// get fetches path and returns the response (body read) and the body.
func (e *env) get(c *http.Client, path string) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.Get(e.ts.URL + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return resp, string(b)
}
