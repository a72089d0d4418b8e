package dashboard

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/web"
)

// DefaultStaleAfter is Options.StaleAfter's default.
const DefaultStaleAfter = 20 * time.Minute

// DefaultTitle is Options.Title's default.
const DefaultTitle = "Veil HQ"

// Options configure a Dashboard. Store and Users are required.
type Options struct {
	Store store.Store  // the footfall database it shows
	Users []web.User   // who may log in (bcrypt hashes, see web.HashPassword)
	Title string       // names the site in the pages; "" means DefaultTitle
	Log   *slog.Logger // nil discards
	// SessionTTL is a session's absolute lifetime; 0 means
	// web.DefaultSessionTTL.
	SessionTTL time.Duration
	// Secure marks cookies Secure: set it when served over HTTPS or
	// behind a TLS reverse proxy.
	Secure bool
	// TrustedProxy is the reverse proxy whose X-Forwarded-For is believed
	// (see web.Options.TrustedProxy); nil trusts none.
	TrustedProxy net.IP
	// Metrics is served at /metrics without login, and the dashboard
	// registers its counters (and web's login counter) on it; nil leaves
	// /metrics unmounted. Keep it off the public internet.
	Metrics *prometheus.Registry
	// Health is mounted at /healthz without login; nil leaves it unmounted.
	Health http.Handler
	// StaleAfter: a device whose last report is older is marked stale; 0
	// means DefaultStaleAfter.
	StaleAfter time.Duration
	// Now is the clock for the relative periods (today, last 7 days…) and
	// for staleness; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Dashboard is head office's web dashboard: the web package's login and
// sessions in front of the footfall pages, exports and APIs. Its methods are
// safe for concurrent use.
type Dashboard struct {
	web        *web.Server
	store      store.Store
	log        *slog.Logger
	title      string
	staleAfter time.Duration
	now        func() time.Time
	requests   *prometheus.CounterVec
}

// Routes the requests counter counts, and its results.
var (
	routes  = []string{"page", "totals", "devices", "export"}
	results = []string{"ok", "bad_request", "error"}
)

// New validates o and returns a Dashboard. Errors name the option at fault.
func New(o Options) (*Dashboard, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("dashboard: %w: Store is nil", web.ErrBadOption)
	}
	d := &Dashboard{store: o.Store, log: o.Log, title: o.Title, staleAfter: o.StaleAfter, now: o.Now}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.title == "" {
		d.title = DefaultTitle
	}
	switch {
	case d.staleAfter == 0:
		d.staleAfter = DefaultStaleAfter
	case d.staleAfter < 0:
		return nil, fmt.Errorf("dashboard: stale after %v: %w: must be positive", o.StaleAfter, web.ErrBadOption)
	}
	if d.now == nil {
		d.now = time.Now
	}
	srv, err := web.New(web.Options{
		Users:        o.Users,
		SessionTTL:   o.SessionTTL,
		Secure:       o.Secure,
		TrustedProxy: o.TrustedProxy,
		Log:          d.log,
		Health:       o.Health,
		Metrics:      o.Metrics,
		Home:         d.counted("page", d.page),
		Title:        d.title,
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	d.web = srv
	d.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_hq_dashboard_requests_total",
		Help: "Requests to head office's dashboard by route (page, totals, devices, export) and result (ok, bad_request, error).",
	}, []string{"route", "result"})
	for _, r := range routes {
		for _, res := range results {
			d.requests.WithLabelValues(r, res)
		}
	}
	if o.Metrics != nil {
		if err := o.Metrics.Register(d.requests); err != nil {
			return nil, fmt.Errorf("dashboard: registering metrics: %w", err)
		}
	}
	srv.Handle("GET /api/totals", d.counted("totals", d.apiTotals))
	srv.Handle("GET /api/devices", d.counted("devices", d.apiDevices))
	srv.HandleAPI("GET /export.csv", d.counted("export", d.exportCSV))
	srv.HandlePublic("GET /static/dashboard.css", http.HandlerFunc(serveCSS))
	return d, nil
}

// Handler returns the dashboard's root handler, to be served by an
// http.Server (set ReadHeaderTimeout; the handler adds no timeouts).
func (d *Dashboard) Handler() http.Handler { return d.web.Handler() }

// HandlePublic mounts h at pattern (net/http ServeMux syntax) without
// login, e.g. the consent relay's phone pages; the security headers still
// apply, and h is responsible for its own CSRF and rate limits. It panics
// when pattern conflicts with a route already registered.
func (d *Dashboard) HandlePublic(pattern string, h http.Handler) { d.web.HandlePublic(pattern, h) }

// Handle mounts h at pattern behind login, as web.Server.Handle does.
func (d *Dashboard) Handle(pattern string, h http.Handler) { d.web.Handle(pattern, h) }

// ClientIP is the request's client address as the dashboard sees it
// (behind Options.TrustedProxy, the forwarded one), for public handlers'
// rate limits.
func (d *Dashboard) ClientIP(r *http.Request) string { return d.web.ClientIP(r) }

// errBadRequest marks a handler's error as the client's (400).
var errBadRequest = errors.New("bad request")

// counted adapts a handler that returns an error: a *paramError is a 400
// with its message, any other error a logged 500; each request is counted
// by route and result.
func (d *Dashboard) counted(route string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		var pe *paramError
		switch {
		case err == nil:
			d.requests.WithLabelValues(route, "ok").Inc()
		case errors.As(err, &pe) || errors.Is(err, errBadRequest):
			d.requests.WithLabelValues(route, "bad_request").Inc()
		default:
			d.requests.WithLabelValues(route, "error").Inc()
			d.log.Error("dashboard request", "route", route, "path", r.URL.Path, "err", err)
		}
	})
}

// params parses r's query string, or answers 400 with the parameter's error.
func (d *Dashboard) params(w http.ResponseWriter, r *http.Request) (params, error) {
	p, err := parseParams(r.URL.RawQuery, d.now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
	return p, err
}

// apiTotals is the JSON form of the CSV export.
type apiTotals struct {
	Period string     `json:"period"`
	From   time.Time  `json:"from"`
	To     time.Time  `json:"to"`
	Bucket string     `json:"bucket"`
	Store  string     `json:"store,omitempty"`
	Camera string     `json:"camera,omitempty"`
	Totals []apiTotal `json:"totals"`
}

type apiTotal struct {
	Store  string    `json:"store"`
	Camera string    `json:"camera"`
	Line   string    `json:"line"`
	Start  time.Time `json:"start"`
	In     int64     `json:"in"`
	Out    int64     `json:"out"`
}

func (d *Dashboard) apiTotals(w http.ResponseWriter, r *http.Request) error {
	p, err := d.params(w, r)
	if err != nil {
		return err
	}
	ts, err := d.store.Totals(r.Context(), p.query())
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return fmt.Errorf("totals for %s: %w", p.encode(), err)
	}
	out := apiTotals{Period: p.Period, From: p.From, To: p.To, Bucket: p.Bucket, Store: p.Store, Camera: p.Camera, Totals: make([]apiTotal, len(ts))}
	for i, t := range ts {
		out.Totals[i] = apiTotal{t.Store, t.Camera, t.Line, t.Start.UTC(), t.In, t.Out}
	}
	return writeJSON(w, out)
}

func (d *Dashboard) apiDevices(w http.ResponseWriter, r *http.Request) error {
	if r.URL.RawQuery != "" {
		http.Error(w, "query string: /api/devices takes no parameters", http.StatusBadRequest)
		return errBadRequest
	}
	ds, err := d.store.Devices(r.Context())
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return fmt.Errorf("devices: %w", err)
	}
	return writeJSON(w, newDeviceRows(ds, d.now(), d.staleAfter))
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// csvHeader is the first row of the CSV export.
var csvHeader = []string{"store", "camera", "line", "bucket_start", "in", "out"}

// exportCSV writes exactly what store.Totals returns for the query, one
// row per total, times in RFC 3339 UTC.
func (d *Dashboard) exportCSV(w http.ResponseWriter, r *http.Request) error {
	p, err := d.params(w, r)
	if err != nil {
		return err
	}
	ts, err := d.store.Totals(r.Context(), p.query())
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return fmt.Errorf("totals for %s: %w", p.encode(), err)
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, p.filename()))
	return writeCSV(w, ts)
}

// writeCSV writes totals as the export's CSV.
func writeCSV(w http.ResponseWriter, ts []store.Total) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	for _, t := range ts {
		rec := []string{t.Store, t.Camera, t.Line, t.Start.UTC().Format(time.RFC3339),
			strconv.FormatInt(t.In, 10), strconv.FormatInt(t.Out, 10)}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("writing CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return nil
}

// filename is the CSV export's file name: the filters, the days and the
// bucket, e.g. veil-s1-2026-03-08-2026-03-14-day.csv. Names are safe in a
// header: parseParams allows only A-Z a-z 0-9 . _ -.
func (p params) filename() string {
	name := "veil"
	if p.Store != "" {
		name += "-" + p.Store
	}
	if p.Camera != "" {
		name += "-" + p.Camera
	}
	return fmt.Sprintf("%s-%s-%s-%s.csv", name, p.From.Format(dateLayout), p.lastDay(), p.Bucket)
}
