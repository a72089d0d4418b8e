package dashboard

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestRefusedWithoutSession checks that every dashboard route needs a
// session (pages redirect to /login, the rest get 401) and that the public
// routes do not.
func TestRefusedWithoutSession(t *testing.T) {
	e := newEnv(t, Options{})
	anon := e.client()
	for _, tc := range []struct {
		path     string
		status   int
		location string
		body     string
	}{
		{"/", http.StatusSeeOther, "/login", ""},
		{"/?period=today&bucket=hour", http.StatusSeeOther, "/login", ""},
		{"/?period=bogus", http.StatusSeeOther, "/login", ""}, // no parsing before login
		{"/export.csv", http.StatusUnauthorized, "", ""},
		{"/export.csv?period=30d", http.StatusUnauthorized, "", ""},
		{"/api/totals", http.StatusUnauthorized, "", ""},
		{"/api/devices", http.StatusUnauthorized, "", ""},
		{"/login", http.StatusOK, "", "<title>Veil HQ: log in</title>"},
		{"/healthz", http.StatusOK, "", "ok\n"},
		{"/metrics", http.StatusOK, "", "veil_hq_dashboard_requests_total"},
		{"/static/dashboard.css", http.StatusOK, "", "svg.chart"},
		{"/c/abc", http.StatusOK, "", "public abc"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := e.get(anon, tc.path)
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location || !strings.Contains(body, tc.body) {
				t.Errorf("status %d, location %q, body %.200q; want %d, %q, containing %q",
					resp.StatusCode, resp.Header.Get("Location"), body, tc.status, tc.location, tc.body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
	for _, route := range routes {
		if n := testutil.ToFloat64(e.d.requests.WithLabelValues(route, "ok")); n != 0 {
			t.Errorf("%s counted %v requests served without a session", route, n)
		}
	}
}

var (
	storeRowRe = regexp.MustCompile(`<tr data-store="([^"]+)" data-in="(\d+)" data-out="(\d+)" data-prev-in="(\d+)" data-prev-out="(\d+)">\s*<td>(\d+)</td>`)
	totalRe    = regexp.MustCompile(`id="(total-in|total-out|prev-in|prev-out)">(\d+)<`)
	figureRe   = regexp.MustCompile(`(?s)<figcaption>([^<]+)</figcaption>(.*?)</figure>`)
	barRe      = regexp.MustCompile(`<g class="bucket"(?: data-bucket="([^"]+)")?(?: data-store="([^"]+)")? data-in="(\d+)" data-out="(\d+)"><title>([^<]*)</title>`)
)

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPageNumbers checks the page's totals, comparisons, ranking and chart
// bars against sums of the fixture computed here, for several periods,
// buckets and filters.
func TestPageNumbers(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.loggedIn()
	day := 24 * time.Hour
	for _, tc := range []struct {
		query    string
		from, to time.Time
		bucket   time.Duration
		keep     func(egress.Report) bool
	}{
		{"", today.AddDate(0, 0, -6), today.Add(day), day, nil},
		{"period=7d&bucket=hour", today.AddDate(0, 0, -6), today.Add(day), time.Hour, nil},
		{"period=today", today, today.Add(day), day, nil},
		{"period=yesterday&bucket=hour", today.Add(-day), today, time.Hour, nil},
		{"period=30d", today.AddDate(0, 0, -29), today.Add(day), day, nil},
		{"from=2026-03-10&to=2026-03-12", time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC), day, nil},
		{"period=7d&store=s1", today.AddDate(0, 0, -6), today.Add(day), day, func(r egress.Report) bool { return r.Store == "s1" }},
		{"period=7d&camera=door&bucket=hour", today.AddDate(0, 0, -6), today.Add(day), time.Hour, func(r egress.Report) bool { return r.Camera == "door" }},
		{"period=custom&from=2025-01-01&to=2025-01-31", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), day, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := e.get(c, "/?"+tc.query)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			per, all := sumsOf(e.calls, tc.from, tc.to, tc.keep)
			prevPer, prevAll := sumsOf(e.calls, tc.from.Add(-tc.to.Sub(tc.from)), tc.from, tc.keep)

			// Totals and the previous period's.
			got := map[string]int64{}
			for _, m := range totalRe.FindAllStringSubmatch(body, -1) {
				got[m[1]] = atoi(t, m[2])
			}
			want := map[string]int64{"total-in": all.In, "total-out": all.Out, "prev-in": prevAll.In, "prev-out": prevAll.Out}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("totals %v, want %v", got, want)
			}

			// Stores: every store of either period, ranked by in.
			rows := storeRowRe.FindAllStringSubmatch(body, -1)
			if len(rows) != len(unionKeys(per, prevPer)) {
				t.Errorf("%d store rows, want %d (stores %v, previous %v)", len(rows), len(unionKeys(per, prevPer)), per, prevPer)
			}
			lastIn := int64(-1)
			for i, m := range rows {
				s, in, out, pin, pout, rank := m[1], atoi(t, m[2]), atoi(t, m[3]), atoi(t, m[4]), atoi(t, m[5]), atoi(t, m[6])
				if in != per[s].In || out != per[s].Out || pin != prevPer[s].In || pout != prevPer[s].Out {
					t.Errorf("store %s: in %d out %d, previous %d %d; want %v, previous %v", s, in, out, pin, pout, per[s], prevPer[s])
				}
				if rank != int64(i+1) || lastIn >= 0 && in > lastIn {
					t.Errorf("store %s ranked %d with in %d after in %d", s, rank, in, lastIn)
				}
				lastIn = in
			}

			// Charts: per store, per camera, and the stores side by side;
			// each bar's bucket is aligned and inside the period, and the
			// bars of each chart add up to what the test sums.
			charts := map[string]sums{}
			for _, f := range figureRe.FindAllStringSubmatch(body, -1) {
				var s sums
				for _, b := range barRe.FindAllStringSubmatch(f[2], -1) {
					s.add(atoi(t, b[3]), atoi(t, b[4]))
					if b[1] == "" {
						continue
					}
					start, err := time.Parse(time.RFC3339, b[1])
					if err != nil || start.Before(tc.from) || !start.Before(tc.to) || start.Sub(tc.from)%tc.bucket != 0 {
						t.Errorf("chart %s: bar at %q (%v) is not a bucket of the period", f[1], b[1], err)
					}
					if !strings.Contains(b[5], "in "+b[3]+", out "+b[4]) {
						t.Errorf("chart %s: tooltip %q does not say in %s, out %s", f[1], b[5], b[3], b[4])
					}
				}
				charts[f[1]] = s
			}
			wantCharts := map[string]sums{}
			cams := map[string]sums{}
			for _, r := range e.calls {
				if r.Start.Before(tc.from) || !r.Start.Before(tc.to) || tc.keep != nil && !tc.keep(r) {
					continue
				}
				k := "Camera " + r.Store + "/" + r.Camera
				s := cams[k]
				s.add(int64(r.In), int64(r.Out))
				cams[k] = s
			}
			for k, v := range cams {
				wantCharts[k] = v
			}
			for s, v := range per {
				wantCharts["Store "+s] = v
			}
			if len(per)+len(prevPer) > 0 {
				wantCharts["Stores side by side"] = all
			}
			if fmt.Sprint(charts) != fmt.Sprint(wantCharts) {
				t.Errorf("charts add up to\n%v\nwant\n%v", charts, wantCharts)
			}
		})
	}
}

func unionKeys(a, b map[string]sums) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// TestChangeAndNew checks the comparison's wording: % change, "new" when the
// previous period had none, and the ranking order of ties.
func TestChangeAndNew(t *testing.T) {
	for _, tc := range []struct {
		cur, prev int64
		pct       string
		class     string
	}{
		{150, 100, "+50.0 %", "up"},
		{50, 100, "-50.0 %", "down"},
		{100, 100, "+0.0 %", ""},
		{5, 0, "new", "up"},
		{0, 0, "–", ""},
		{0, 7, "-100.0 %", "down"},
		{1, 3, "-66.7 %", "down"},
	} {
		got := newChange(tc.cur, tc.prev)
		if got.Abs != tc.cur-tc.prev || got.Pct != tc.pct || got.Class != tc.class {
			t.Errorf("newChange(%d, %d) = %+v, want %d %q %q", tc.cur, tc.prev, got, tc.cur-tc.prev, tc.pct, tc.class)
		}
	}
	// s4 only reported in the last 7 days, s3 only the 7 before.
	e := newEnv(t, Options{})
	_, body := e.get(e.loggedIn(), "/?period=7d")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?s)<tr data-store="s4"[^>]*data-prev-in="0" data-prev-out="0">.*?<td class="up">new</td>`),
		regexp.MustCompile(`(?s)<tr data-store="s3" data-in="0" data-out="0"[^>]*>.*?<td class="down">-100.0 %</td>`),
	} {
		if !want.MatchString(body) {
			t.Errorf("page does not match %s", want)
		}
	}
}

// TestCSV checks the CSV export: equal to store.Totals for the query, a
// header first, an attachment, and byte for byte the golden file.
func TestCSV(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.loggedIn()
	for _, tc := range []struct {
		golden string
		query  string
		q      store.Query
		file   string
	}{
		{"export_7d_day", "period=7d", store.Query{From: today.AddDate(0, 0, -6), To: today.AddDate(0, 0, 1), Bucket: store.Day},
			"veil-2026-03-08-2026-03-14-day.csv"},
		{"export_s1_door_yesterday_hour", "period=yesterday&bucket=hour&store=s1&camera=door",
			store.Query{Store: "s1", Camera: "door", From: today.AddDate(0, 0, -1), To: today, Bucket: store.Hour},
			"veil-s1-door-2026-03-13-2026-03-13-hour.csv"},
		{"export_custom_s2", "from=2026-03-11&to=2026-03-12&store=s2",
			store.Query{Store: "s2", From: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC), Bucket: store.Day},
			"veil-s2-2026-03-11-2026-03-12-day.csv"},
		{"export_empty", "period=custom&from=2020-01-01&to=2020-01-02", store.Query{From: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2020, 1, 3, 0, 0, 0, 0, time.UTC), Bucket: store.Day},
			"veil-2020-01-01-2020-01-02-day.csv"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			resp, body := e.get(c, "/export.csv?"+tc.query)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if cd, want := resp.Header.Get("Content-Disposition"), `attachment; filename="`+tc.file+`"`; cd != want {
				t.Errorf("Content-Disposition %q, want %q", cd, want)
			}
			totals, err := e.st.Totals(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := parseCSV(t, body), totalsRows(totals); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("CSV rows\n%v\nstore.Totals\n%v", got, want)
			}
			golden(t, filepath.Join("testdata", tc.golden+".golden"), []byte(body))
		})
	}
}

// parseCSV reads the export, checking its header, into rows.
func parseCSV(t testing.TB, body string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("reading the CSV: %v", err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "store,camera,line,bucket_start,in,out" {
		t.Fatalf("CSV header %v", recs)
	}
	return recs[1:]
}

// totalsRows is what the CSV must hold for totals.
func totalsRows(ts []store.Total) [][]string {
	rows := [][]string{}
	for _, x := range ts {
		rows = append(rows, []string{x.Store, x.Camera, x.Line, x.Start.UTC().Format(time.RFC3339), strconv.FormatInt(x.In, 10), strconv.FormatInt(x.Out, 10)})
	}
	return rows
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

// TestAPI checks /api/totals against store.Totals and /api/devices against
// store.Devices, with staleness by the dashboard's clock.
func TestAPI(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.loggedIn()
	resp, body := e.get(c, "/api/totals?period=30d&bucket=hour&store=s2")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var got apiTotals
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	q := store.Query{Store: "s2", From: today.AddDate(0, 0, -29), To: today.AddDate(0, 0, 1), Bucket: store.Hour}
	want, err := e.st.Totals(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if got.Period != "30d" || got.Bucket != "hour" || got.Store != "s2" || !got.From.Equal(q.From) || !got.To.Equal(q.To) || len(got.Totals) != len(want) || len(want) == 0 {
		t.Fatalf("got %+v, want %d totals of %+v", got, len(want), q)
	}
	for i, w := range want {
		g := got.Totals[i]
		if g.Store != w.Store || g.Camera != w.Camera || g.Line != w.Line || !g.Start.Equal(w.Start) || g.In != w.In || g.Out != w.Out {
			t.Errorf("totals[%d] = %+v, want %+v", i, g, w)
		}
	}
}

// TestDevices checks the devices' rows in /api/devices and on the page:
// status, stale after StaleAfter without a report, by the dashboard's
// clock (the store stamps LastReport with the wall clock), unsigned
// reports and conflicts.
func TestDevices(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shift time.Duration // of the dashboard's clock from the wall clock
		stale map[string]bool
	}{
		{"fresh", 0, map[string]bool{"s5-a": true}},
		{"19 min later", 19 * time.Minute, map[string]bool{"s5-a": true}},
		{"21 min later", 21 * time.Minute, map[string]bool{"s1-a": true, "s1-b": true, "s2-a": true, "s3-a": true, "s4-a": true, "s5-a": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{Now: func() time.Time { return time.Now().Add(tc.shift) }})
			c := e.loggedIn()
			_, body := e.get(c, "/api/devices")
			var rows []deviceRow
			if err := json.Unmarshal([]byte(body), &rows); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			stored, err := e.st.Devices(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(stored) {
				t.Fatalf("%d devices, store has %d", len(rows), len(stored))
			}
			status := map[string]string{"s1-a": "online", "s2-a": "offline", "s5-a": "online"}
			_, page := e.get(c, "/")
			for i, r := range rows {
				s := stored[i]
				want := status[r.Device]
				if want == "" {
					want = "unknown"
				}
				if r.Store != s.Store || r.Device != s.Device || r.Status != want || r.Reports != s.Reports ||
					!r.StatusAt.Equal(s.StatusAt) || !r.LastReport.Equal(s.LastReport) || r.Stale != tc.stale[r.Device] ||
					r.Unsigned != s.Unsigned || r.Conflicts != s.Conflicts || !r.LastConflict.Equal(s.LastConflict) {
					t.Errorf("device %+v, stored %+v, want status %s stale %v", r, s, want, tc.stale[r.Device])
				}
				if (r.Unsigned > 0) != (r.Device == "s2-a") || (r.Unsigned > 0 && r.Unsigned != r.Reports) {
					t.Errorf("device %s: %d of %d reports unsigned; want all of s2-a's, none of the others'", r.Device, r.Unsigned, r.Reports)
				}
				if (r.Conflicts == 1 && !r.LastConflict.IsZero()) != (r.Device == "s1-b") {
					t.Errorf("device %s: %d conflicts, last %s; want s1-b's one", r.Device, r.Conflicts, r.LastConflict)
				}
				row := regexp.MustCompile(`<tr data-device="` + r.Device + `" data-store="` + r.Store + `" data-status="` + r.Status +
					fmt.Sprintf(`" data-unsigned="%d" data-conflicts="%d"`, r.Unsigned, r.Conflicts) + `( data-stale class="stale")?>`).FindStringSubmatch(page)
				if row == nil || (row[1] != "") != r.Stale {
					t.Errorf("page row of %s: %q, want stale %v", r.Device, row, r.Stale)
				}
			}
		})
	}
}

// TestBadParams checks that every route answers a bad query with 400 and a
// message naming the parameter, and counts it.
func TestBadParams(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.loggedIn()
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"period=week", `parameter "period": "week"; allowed today, yesterday, 7d, 30d, custom`},
		{"bucket=minute", `parameter "bucket": "minute"; allowed hour or day`},
		{"period=30d&bucket=hour&x=1", `parameter "x": unknown parameter; allowed period, from, to, bucket, store, camera`},
		{"period=7d&period=30d", `parameter "period": given 2 times; allowed once`},
		{"period=custom&to=2026-03-01", `parameter "from": missing`},
		{"from=2026-03-01", `parameter "to": missing`},
		{"from=2026-3-1&to=2026-03-02", `parameter "from": "2026-3-1"; allowed a day YYYY-MM-DD`},
		{"from=2026-03-05&to=2026-03-01", `parameter "to": "2026-03-01" is before from "2026-03-05"`},
		{"from=2024-01-01&to=2025-12-31", `parameter "to": the period from 2024-01-01 to 2025-12-31 has 731 days; allowed at most 400`},
		{"from=2026-01-01&to=2026-02-28&bucket=hour", `parameter "bucket": hour buckets allow periods of at most 31 days, this one has 59`},
		{"store=a%20b", `parameter "store": "a b" has ' '; allowed 1..64 of A-Z a-z 0-9 . _ -`},
		{"camera=%3Cscript%3E", `parameter "camera": "<script>" has '<'`},
		{"period=%zz", `query string: invalid URL escape "%zz"`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			for _, path := range []string{"/export.csv?", "/api/totals?", "/?"} {
				resp, body := e.get(c, path+tc.query)
				if path == "/?" {
					// The page shows the form and the error, HTML-escaped.
					if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `<p class="bad" role="alert" id="error">`) ||
						!strings.Contains(body, strings.NewReplacer(`"`, "&#34;", `'`, "&#39;", "<", "&lt;", ">", "&gt;").Replace(tc.want)) {
						t.Errorf("GET %s%s: %d, body lacks the error %q", path, tc.query, resp.StatusCode, tc.want)
					}
					continue
				}
				if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body, tc.want) {
					t.Errorf("GET %s%s: %d %q, want 400 starting %q", path, tc.query, resp.StatusCode, body, tc.want)
				}
			}
		})
	}
	if resp, body := e.get(c, "/api/devices?x=1"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("/api/devices?x=1: %d %s", resp.StatusCode, body)
	}
	for _, route := range []string{"page", "totals", "export"} {
		if n := testutil.ToFloat64(e.d.requests.WithLabelValues(route, "bad_request")); n != 13 {
			t.Errorf("%s: %v bad requests counted, want 13", route, n)
		}
	}
}

// TestNewRejects checks New's option errors.
func TestNewRejects(t *testing.T) {
	e := newEnv(t, Options{})
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no store", Options{Users: testUsers()}, "Store is nil"},
		{"no users", Options{Store: e.st}, "no users configured"},
		{"negative stale", Options{Store: e.st, Users: testUsers(), StaleAfter: -time.Second}, "stale after -1s"},
		{"metrics twice", Options{Store: e.st, Users: testUsers(), Metrics: e.reg}, "registering metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestMetricsCount checks that served requests are counted by route.
func TestMetricsCount(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.loggedIn()
	for _, p := range []string{"/", "/?period=today", "/export.csv", "/api/totals", "/api/devices"} {
		if resp, body := e.get(c, p); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
	_, metrics := e.get(e.client(), "/metrics")
	for _, want := range []string{
		`veil_hq_dashboard_requests_total{result="ok",route="page"} 2`,
		`veil_hq_dashboard_requests_total{result="ok",route="export"} 1`,
		`veil_hq_dashboard_requests_total{result="ok",route="totals"} 1`,
		`veil_hq_dashboard_requests_total{result="ok",route="devices"} 1`,
		`veil_web_logins_total{result="ok"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
