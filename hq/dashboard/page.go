package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/web"
)

// The page uses no script and no inline style (web's Content-Security-Policy
// forbids both): colours come from /static/dashboard.css, and the charts
// are inline SVG drawn on the server.

type option struct {
	Value, Label string
	Selected     bool
}

// pageData is what the dashboard template renders.
type pageData struct {
	Title, User, CSRF string
	Error             string // a bad parameter: the form only, with this message
	P                 params
	FromDate, ToDate  string       // a custom period's days for the form; "" otherwise
	CSV, JSON         template.URL // the export links of the query
	StoreLinks        map[string]template.URL
	Periods, Buckets  []option
	Stores            []option
	Range             string // the period for people
	Prev              string // the previous period for people
	R                 report
	Devices           []deviceRow
	StaleAfter        time.Duration
	Now               time.Time
}

// page renders the dashboard for the query, or the form with the error
// (400) for a bad parameter.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) error {
	data := pageData{Title: d.title, StaleAfter: d.staleAfter, Now: d.now().UTC()}
	data.User, _ = web.UserFromContext(r.Context())
	data.CSRF, _ = web.CSRFFromContext(r.Context())
	status := http.StatusOK
	p, perr := parseParams(r.URL.RawQuery, data.Now)
	if perr != nil {
		status = http.StatusBadRequest
		data.Error = perr.Error()
		p, _ = parseParams("", data.Now) // the form shows the defaults
	}
	data.P = p
	if p.Period == periodCustom {
		data.FromDate, data.ToDate = p.From.Format(dateLayout), p.lastDay()
	}
	data.CSV = template.URL("/export.csv?" + p.encode()) // encode escapes every value
	data.JSON = template.URL("/api/totals?" + p.encode())
	for _, v := range periods {
		data.Periods = append(data.Periods, option{v, periodLabels[v], v == p.Period})
	}
	for _, v := range []string{store.Day, store.Hour} {
		data.Buckets = append(data.Buckets, option{v, "by " + v, v == p.Bucket})
	}

	ds, err := d.store.Devices(r.Context())
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return fmt.Errorf("devices: %w", err)
	}
	var names []string
	for _, dv := range ds {
		if p.Store == "" || dv.Store == p.Store {
			data.Devices = append(data.Devices, newDeviceRows([]store.Device{dv}, data.Now, d.staleAfter)...)
		}
		names = append(names, dv.Store)
	}
	if perr == nil {
		cur, err := d.store.Totals(r.Context(), p.query())
		if err != nil {
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			return fmt.Errorf("totals for %s: %w", p.encode(), err)
		}
		prev, err := d.store.Totals(r.Context(), p.previous())
		if err != nil {
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			return fmt.Errorf("previous totals for %s: %w", p.encode(), err)
		}
		data.R = newReport(p, cur, prev)
		data.StoreLinks = map[string]template.URL{}
		for _, s := range data.R.Stores {
			names = append(names, s.Store)
			ps := p
			ps.Store = s.Store
			data.StoreLinks[s.Store] = template.URL("/?" + ps.encode())
		}
		pq := p.previous()
		data.Range = dayRange(p.From, p.To)
		data.Prev = dayRange(pq.From, pq.To)
	}
	if p.Store != "" {
		names = append(names, p.Store)
	}
	slices.Sort(names)
	data.Stores = []option{{"", "all stores", p.Store == ""}}
	for _, s := range slices.Compact(names) {
		data.Stores = append(data.Stores, option{s, s, s == p.Store})
	}

	// Render to a buffer, so a template error is a clean 500.
	var b bytes.Buffer
	if err := dashPage.Execute(&b, data); err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return fmt.Errorf("rendering the dashboard: %w", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = b.WriteTo(w) // an error here is the client gone
	return perr
}

var periodLabels = map[string]string{
	periodToday:     "today",
	periodYesterday: "yesterday",
	period7d:        "last 7 days",
	period30d:       "last 30 days",
	periodCustom:    "custom (from–to)",
}

// dayRange is [from, to) of whole days for people.
func dayRange(from, to time.Time) string {
	last := to.AddDate(0, 0, -1)
	days := int(to.Sub(from) / (24 * time.Hour))
	if days == 1 {
		return from.Format("Mon 2006-01-02") + " (1 day, UTC)"
	}
	return fmt.Sprintf("%s – %s (%d days, UTC)", from.Format("2006-01-02"), last.Format("2006-01-02"), days)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

var dashPage = template.Must(template.New("dash").Funcs(template.FuncMap{
	"f":    func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"time": fmtTime,
	"ago":  ago,
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="veil-csrf" content="{{.CSRF}}">
<title>{{.Title}}</title>
<link rel="stylesheet" href="/static/veil.css">
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><span>{{.User}}</span> <button type="submit">Log out</button></form>
</header>
<main class="dash">
<form class="query" method="get" action="/">
<label>Period <select name="period">{{range .Periods}}<option value="{{.Value}}"{{if .Selected}} selected{{end}}>{{.Label}}</option>{{end}}</select></label>
<label>From <input type="date" name="from" value="{{.FromDate}}"></label>
<label>To <input type="date" name="to" value="{{.ToDate}}"></label>
<label>Bucket <select name="bucket">{{range .Buckets}}<option value="{{.Value}}"{{if .Selected}} selected{{end}}>{{.Label}}</option>{{end}}</select></label>
<label>Store <select name="store">{{range .Stores}}<option value="{{.Value}}"{{if .Selected}} selected{{end}}>{{.Label}}</option>{{end}}</select></label>
<label>Camera <input name="camera" list="cameras" value="{{.P.Camera}}" placeholder="all cameras" maxlength="64"></label>
<datalist id="cameras">{{range .R.Cameras}}<option value="{{.}}">{{end}}</datalist>
<button type="submit">Show</button>
</form>
{{if .Error}}<p class="bad" role="alert" id="error">{{.Error}}</p>
{{else}}
<section id="totals">
<h2>Totals</h2>
<p>{{.Range}}, by {{.P.Bucket}}{{with .P.Store}}, store {{.}}{{end}}{{with .P.Camera}}, camera {{.}}{{end}}.
<a id="csv" href="{{.CSV}}" download>CSV</a> · <a id="json" href="{{.JSON}}">JSON</a></p>
<table class="sums">
<thead><tr><th></th><th>this period</th><th>previous period</th><th>change</th><th>%</th></tr></thead>
<tbody>
<tr><th>In</th><td id="total-in">{{.R.Total.In}}</td><td id="prev-in">{{.R.Prev.In}}</td><td class="{{.R.In.Class}}">{{.R.In.Abs}}</td><td class="{{.R.In.Class}}">{{.R.In.Pct}}</td></tr>
<tr><th>Out</th><td id="total-out">{{.R.Total.Out}}</td><td id="prev-out">{{.R.Prev.Out}}</td><td class="{{.R.Out.Class}}">{{.R.Out.Abs}}</td><td class="{{.R.Out.Class}}">{{.R.Out.Pct}}</td></tr>
</tbody>
</table>
<p class="note">Previous period: {{.Prev}}.</p>
</section>
<section id="stores">
<h2>Stores</h2>
{{if .R.Stores}}<table class="stores">
<thead><tr><th>#</th><th>store</th><th>in</th><th>share</th><th>previous in</th><th>change</th><th>%</th><th>out</th><th>previous out</th><th>change</th><th>%</th></tr></thead>
<tbody>
{{range .R.Stores}}<tr data-store="{{.Store}}" data-in="{{.Cur.In}}" data-out="{{.Cur.Out}}" data-prev-in="{{.Prev.In}}" data-prev-out="{{.Prev.Out}}">
<td>{{.Rank}}</td><th><a href="{{index $.StoreLinks .Store}}">{{.Store}}</a></th><td>{{.Cur.In}}</td><td>{{.Share}}</td><td>{{.Prev.In}}</td><td class="{{.In.Class}}">{{.In.Abs}}</td><td class="{{.In.Class}}">{{.In.Pct}}</td><td>{{.Cur.Out}}</td><td>{{.Prev.Out}}</td><td class="{{.Out.Class}}">{{.Out.Abs}}</td><td class="{{.Out.Class}}">{{.Out.Pct}}</td>
</tr>
{{end}}</tbody>
</table>
{{template "chart" .R.StoresChart}}
{{else}}<p>No reports in this period or the previous one.</p>
{{end}}</section>
{{if .R.StoreCharts}}<section id="store-charts">
<h2>By store</h2>
{{range .R.StoreCharts}}{{template "chart" .}}{{end}}
</section>
<section id="camera-charts">
<h2>By camera</h2>
{{range .R.CameraCharts}}{{template "chart" .}}{{end}}
{{with .R.CamerasHidden}}<p class="note">{{.}} more cameras: filter by store to see them.</p>{{end}}
</section>
{{end}}{{end}}
<section id="devices">
<h2>Devices</h2>
{{if .Devices}}<table class="devices">
<thead><tr><th>store</th><th>device</th><th>status</th><th>status since</th><th>last report</th><th></th><th>reports</th><th>unsigned</th><th>conflicts</th><th>last conflict</th></tr></thead>
<tbody>
{{range .Devices}}<tr data-device="{{.Device}}" data-store="{{.Store}}" data-status="{{.Status}}" data-unsigned="{{.Unsigned}}" data-conflicts="{{.Conflicts}}"{{if .Stale}} data-stale class="stale"{{end}}>
<td>{{.Store}}</td><th>{{.Device}}</th><td class="{{if eq .Status "online"}}ok{{else}}bad{{end}}">{{.Status}}</td><td>{{time .StatusAt}}</td><td>{{time .LastReport}}</td><td>{{ago $.Now .LastReport}}{{if .Stale}} <strong>stale</strong>{{end}}</td><td>{{.Reports}}</td>
<td{{if .Unsigned}} class="bad"{{end}}>{{if .Unsigned}}<strong>{{.Unsigned}} unsigned</strong>{{else}}0{{end}}</td><td{{if .Conflicts}} class="bad"{{end}}>{{if .Conflicts}}<strong>{{.Conflicts}}</strong>{{else}}0{{end}}</td><td>{{time .LastConflict}}</td>
</tr>
{{end}}</tbody>
</table>
<p class="note">Stale: no report for more than {{.StaleAfter}}. Unsigned: reports stored without their box's signature (hq.unsigned_devices), which anyone able to publish on the box's topic could have forged. Conflicts: reports refused because head office holds a different one with the same identity (device, boot, seq). Times in UTC; now {{time .Now}}.</p>
{{else}}<p>No devices yet.</p>
{{end}}</section>
</main>
</body>
</html>
{{define "chart"}}<figure class="chart">
<figcaption>{{.Title}}</figcaption>
<svg class="chart" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}: people in and out" data-chart="{{.Title}}">
<g class="legend" transform="translate({{f .Left}} 4)"><rect class="in" width="10" height="10"></rect><text x="14" y="9">in</text><rect class="out" x="40" width="10" height="10"></rect><text x="54" y="9">out</text></g>
<g class="y axis">{{range .YTick}}<line class="grid" x1="{{f $.Left}}" x2="{{f $.Right}}" y1="{{f .Pos}}" y2="{{f .Pos}}"></line><text x="{{f $.Left}}" dx="-4" y="{{f .Pos}}" dy="3" text-anchor="end">{{.Label}}</text>{{end}}</g>
<g class="bars">{{range .Bars}}<g class="bucket"{{with .Bucket}} data-bucket="{{.}}"{{end}}{{with .Store}} data-store="{{.}}"{{end}} data-in="{{.In}}" data-out="{{.Out}}"><title>{{.Label}}</title><rect class="in" x="{{f .XIn}}" y="{{f .YIn}}" width="{{f .W}}" height="{{f .HIn}}"></rect><rect class="out" x="{{f .XOut}}" y="{{f .YOut}}" width="{{f .W}}" height="{{f .HOut}}"></rect></g>{{end}}</g>
<g class="x axis"><line class="axis" x1="{{f .Left}}" x2="{{f .Right}}" y1="{{f .Bottom}}" y2="{{f .Bottom}}"></line><line class="axis" x1="{{f .Left}}" x2="{{f .Left}}" y1="{{f .Top}}" y2="{{f .Bottom}}"></line>{{range .XTick}}<text x="{{f .Pos}}" y="{{f $.Bottom}}" dy="14" text-anchor="middle">{{.Label}}</text>{{end}}</g>
</svg>
</figure>
{{end}}`))

const css = `main.dash{display:block}
main.dash section{background:#fff;padding:.5rem 1rem;border-radius:4px;margin:0 0 1rem}
form.query{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:0 0 1rem}
form.query label{margin:0}
table{border-collapse:collapse}
th,td{padding:.2rem .6rem;text-align:right;font-variant-numeric:tabular-nums}
thead th{border-bottom:1px solid #ccc;font-weight:normal;color:#555}
tbody th{text-align:left}
.up{color:#060}.down{color:#a00}
tr.stale td,tr.stale th{background:#fee}
.note{color:#555;font-size:.9em}
figure.chart{margin:.5rem 0}
svg.chart{width:100%;max-width:60rem;height:auto;display:block}
svg.chart .in{fill:#2b6cb0}
svg.chart .out{fill:#dd6b20}
svg.chart .grid{stroke:#e4e4e4}
svg.chart .axis{stroke:#444}
svg.chart text{font-size:10px;fill:#333}
`

func serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	_, _ = w.Write([]byte(css))
}
