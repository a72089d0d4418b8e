package dashboard

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/testkit/browsertest"
)

// chromiumPath finds Debian's chromium, or skips (fails under CI).
func chromiumPath(tb testing.TB) string { return browsertest.Chromium(tb) }

// openBrowser starts headless chromium for at most d; the returned function
// closes it.
func openBrowser(tb testing.TB, bin string, d time.Duration) (context.Context, func()) {
	return browsertest.Open(tb, bin, d, chromedp.WindowSize(1280, 1000))
}

func awaitPromise(p *runtime.EvaluateParams) { yes := true; p.AwaitPromise = &yes }

// shownChart is a chart as the browser rendered it.
type shownChart struct {
	Title string  `json:"title"`
	Width float64 `json:"width"`
	Bars  []struct {
		Bucket string  `json:"bucket"`
		Store  string  `json:"store"`
		In     int64   `json:"in"`
		Out    int64   `json:"out"`
		HIn    float64 `json:"hin"`
		HOut   float64 `json:"hout"`
		Title  string  `json:"title"`
	} `json:"bars"`
	Fill string `json:"fill"`
}

const readCharts = `[...document.querySelectorAll('figure.chart')].map(f => {
	const svg = f.querySelector('svg');
	const anyIn = svg.querySelector('rect.in');
	return {
		title: f.querySelector('figcaption').textContent,
		width: svg.getBoundingClientRect().width,
		fill: anyIn ? getComputedStyle(anyIn).fill : '',
		bars: [...svg.querySelectorAll('g.bucket')].map(g => ({
			bucket: g.dataset.bucket || '', store: g.dataset.store || '',
			in: Number(g.dataset.in), out: Number(g.dataset.out),
			hin: g.querySelector('rect.in').getBBox().height,
			hout: g.querySelector('rect.out').getBBox().height,
			title: g.querySelector('title').textContent,
		})),
	};
})`

// TestBrowserDashboard logs in through the form in headless Chromium,
// chooses a custom period by hour with the period form, and checks the
// rendered charts (their bars' data attributes, heights in proportion, the
// stylesheet applied under the Content-Security-Policy) and the totals
// against store.Totals; then fetches the CSV link in the browser's session
// and checks it against store.Totals too.
func TestBrowserDashboard(t *testing.T) {
	bin := chromiumPath(t)
	e := newEnv(t, Options{})
	bctx, closeBrowser := openBrowser(t, bin, 20*time.Second)
	defer closeBrowser()

	// Logged out, / is the login form; log in.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(e.ts.URL+"/"),
		chromedp.WaitVisible(`input[name="user"]`),
		chromedp.SetValue(`input[name="user"]`, testUser),
		chromedp.SetValue(`input[name="password"]`, testPW),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible(`#totals`),
	); err != nil {
		t.Fatalf("logging in: %v", err)
	}
	// The period form: 2026-03-10 to 2026-03-12, by hour.
	if err := chromedp.Do(bctx,
		chromedp.SetValue(`select[name="period"]`, "custom"),
		chromedp.SetValue(`input[name="from"]`, "2026-03-10"),
		chromedp.SetValue(`input[name="to"]`, "2026-03-12"),
		chromedp.SetValue(`select[name="bucket"]`, "hour"),
		chromedp.Click(`form.query button[type="submit"]`),
		chromedp.WaitVisible(`input[name="from"][value="2026-03-10"]`),
	); err != nil {
		t.Fatalf("choosing the period: %v", err)
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "period=custom") || !strings.Contains(loc, "bucket=hour") {
		t.Errorf("location %s", loc)
	}
	if p := os.Getenv("VEIL_DASHBOARD_SCREENSHOT"); p != "" { // a PNG of the page, to look at
		if png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(p, png, 0o644)
		}
	}

	q := store.Query{From: date(2026, 3, 10), To: date(2026, 3, 13), Bucket: store.Hour}
	totals, err := e.st.Totals(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]sums{} // chart title -> bucket or store -> sums
	var all sums
	add := func(chart, key string, tt store.Total) {
		if want[chart] == nil {
			want[chart] = map[string]sums{}
		}
		s := want[chart][key]
		s.add(tt.In, tt.Out)
		want[chart][key] = s
	}
	for _, tt := range totals {
		b := tt.Start.Format(time.RFC3339)
		add("Store "+tt.Store, b, tt)
		add("Camera "+tt.Store+"/"+tt.Camera, b, tt)
		add("Stores side by side", tt.Store, tt)
		all.add(tt.In, tt.Out)
	}
	if len(totals) == 0 {
		t.Fatal("the fixture has no totals in the period")
	}
	// The stores chart also has the stores with reports only in the
	// previous period (2026-03-07 to 03-09), at 0.
	prev, err := e.st.Totals(context.Background(), store.Query{From: date(2026, 3, 7), To: date(2026, 3, 10), Bucket: store.Day})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range prev {
		tt.In, tt.Out = 0, 0
		add("Stores side by side", tt.Store, tt)
	}

	charts, err := chromedp.Run(bctx, chromedp.Evaluate[[]shownChart](readCharts))
	if err != nil {
		t.Fatalf("reading the charts: %v", err)
	}
	got := map[string]map[string]sums{}
	bars := 0
	for _, c := range charts {
		if c.Width < 100 || c.Fill != "rgb(43, 108, 176)" {
			t.Errorf("chart %q rendered %.0f px wide, in bars filled %q: stylesheet not applied?", c.Title, c.Width, c.Fill)
		}
		got[c.Title] = map[string]sums{}
		scale := 0.0 // px per person, the same for every bar of a chart
		for _, b := range c.Bars {
			key := b.Bucket + b.Store
			got[c.Title][key] = sums{b.In, b.Out}
			bars++
			if !strings.Contains(b.Title, fmt.Sprintf("in %d, out %d", b.In, b.Out)) {
				t.Errorf("chart %q bar %s: tooltip %q", c.Title, key, b.Title)
			}
			for _, hv := range [][2]float64{{b.HIn, float64(b.In)}, {b.HOut, float64(b.Out)}} {
				if hv[1] == 0 {
					if hv[0] > 0.01 {
						t.Errorf("chart %q bar %s: %.2f px for 0", c.Title, key, hv[0])
					}
					continue
				}
				if scale == 0 {
					scale = hv[0] / hv[1]
				}
				if d := hv[0] - scale*hv[1]; d > 0.05 || d < -0.05 {
					t.Errorf("chart %q bar %s: %.2f px for %v, want %.2f", c.Title, key, hv[0], hv[1], scale*hv[1])
				}
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("charts in the browser\n%v\nstore.Totals\n%v", got, want)
	}
	t.Logf("%d charts, %d bars", len(charts), bars)
	shownIn, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('total-in').textContent + ' ' + document.getElementById('total-out').textContent`))
	if err != nil || shownIn != fmt.Sprintf("%d %d", all.In, all.Out) {
		t.Errorf("totals shown %q (%v), want %d %d", shownIn, err, all.In, all.Out)
	}

	// The CSV link, fetched in the page's session.
	type fetched struct {
		Status      int    `json:"status"`
		Disposition string `json:"disposition"`
		Body        string `json:"body"`
	}
	csv, err := chromedp.Run(bctx, chromedp.Evaluate[fetched](`(async () => {
		const r = await fetch(document.getElementById('csv').href);
		return {status: r.status, disposition: r.headers.get('content-disposition') || '', body: await r.text()};
	})()`, awaitPromise))
	if err != nil {
		t.Fatalf("fetching the CSV: %v", err)
	}
	if csv.Status != 200 || csv.Disposition != `attachment; filename="veil-2026-03-10-2026-03-12-hour.csv"` {
		t.Errorf("CSV: status %d, Content-Disposition %q", csv.Status, csv.Disposition)
	}
	if g, w := parseCSV(t, csv.Body), totalsRows(totals); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("CSV in the browser\n%v\nstore.Totals\n%v", g, w)
	}
}
