// Package web is the operator web server of the shop box: login, sessions,
// the camera list, /healthz and /metrics. Head office's dashboard
// (hq/dashboard) reuses it with its own home page (Options.Home) and title
// (Options.Title).
//
// Its parts:
//
//   - web.go: Options, New, Server (routes, security headers, Handle, the
//     extension point for the live view).
//   - auth.go: users and bcrypt hashes, POST /login and /logout, the
//     session store and the CSRF check.
//   - limit.go: the login failure limiter (per user name and per client IP).
//   - page.go: the HTML pages (no external assets, no JavaScript needed).
//
// Routes:
//
//	GET  /login         login form                      public
//	POST /login         form fields user, password      public (rate limited)
//	POST /logout        deletes the session             session + CSRF
//	GET  /              camera list with <video> slots  session
//	                    (or Options.Home when set)
//	GET  /api/cameras   the same as JSON                session
//	GET  /static/veil.css                               public
//	     /healthz       Options.Health                  public
//	GET  /metrics       Options.Metrics                 public: keep the port on the shop network
//	     anything mounted with Server.Handle            session (+ CSRF for unsafe methods)
//	     anything mounted with Server.HandleAPI         likewise, but 401 instead of a redirect
//
// CSRF: session cookies are SameSite=Strict, and every request with an
// unsafe method (anything but GET, HEAD, OPTIONS) to an authenticated
// endpoint must also carry the header X-Veil-CSRF equal to the session's
// CSRF token, which the index page exposes as
// <meta name="veil-csrf" content="…">. The one exception is POST /logout,
// which also accepts the token as the form field "csrf" so the logout
// button works without JavaScript. In addition, net/http's
// CrossOriginProtection refuses cross-origin unsafe requests (including
// POST /login) from browsers.
package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultSessionTTL is how long a session lasts when Options.SessionTTL is 0.
const DefaultSessionTTL = 12 * time.Hour

// CSRFHeader is the request header that must carry the session's CSRF token
// on unsafe requests to authenticated endpoints.
const CSRFHeader = "X-Veil-CSRF"

// Errors New returns, wrapped with the offending user or value.
var (
	// ErrNoUsers means Options.Users is empty: nobody could log in.
	ErrNoUsers = errors.New("no users configured")
	// ErrBadUser means a user has an empty, over-long or duplicate name.
	ErrBadUser = errors.New("bad user name")
	// ErrNotBcrypt means a user's PasswordHash is not a bcrypt hash.
	ErrNotBcrypt = errors.New("password hash is not a bcrypt hash")
	// ErrBadOption means another option is out of range.
	ErrBadOption = errors.New("bad option")
)

// User is an operator allowed to log in.
type User struct {
	Name         string
	PasswordHash string // bcrypt hash, e.g. from HashPassword; never a plain password
}

// CameraStatus is one camera as the page and /api/cameras show it.
type CameraStatus struct {
	Name      string  `json:"name"`
	Healthy   bool    `json:"healthy"`
	FPS       float64 `json:"fps"`
	Viewers   int     `json:"viewers"`
	LastError string  `json:"last_error,omitempty"`
}

// Options configure a Server. Only Users is required.
type Options struct {
	Users      []User
	SessionTTL time.Duration // absolute lifetime of a session; 0 means DefaultSessionTTL
	Secure     bool          // mark cookies Secure (HTTPS, or behind a TLS reverse proxy)
	// TrustedProxy is the address of a reverse proxy in front of the
	// server: for requests from it, the client address (for login limits
	// and logs) is the last X-Forwarded-For entry. nil trusts no proxy.
	TrustedProxy net.IP
	Log          *slog.Logger // nil discards
	// Cameras is called on every request for / and /api/cameras; it must be
	// safe for concurrent use. nil means no cameras.
	Cameras func() []CameraStatus
	// Health is mounted at /healthz without login; nil leaves it unmounted.
	Health http.Handler
	// Metrics is served at /metrics without login, and the server registers
	// its own counters on it; nil leaves /metrics unmounted. Anyone who can
	// reach the port can read it: keep the port on the shop network.
	Metrics *prometheus.Registry
	// Scripts are same-origin script paths (each starting with "/") the
	// index page loads, e.g. the live view's JavaScript mounted with Handle.
	Scripts []string
	// Home, when set, is served at GET / behind login in place of the
	// camera list (which Cameras and Scripts then no longer show; GET
	// /api/cameras stays). It can read the user with UserFromContext and
	// the CSRF token for its logout form with CSRFFromContext.
	Home http.Handler
	// Title names the site on the login page (its <title> and heading) and
	// on the camera list; "" means "Veil".
	Title string
}

// Server is the operator web server. Its methods are safe for concurrent use.
type Server struct {
	log     *slog.Logger
	proxy   net.IP
	ttl     time.Duration
	secure  bool
	cameras func() []CameraStatus
	scripts []string
	title   string

	users []user
	dummy []byte // bcrypt hash compared for unknown users, so they take as long

	mux *http.ServeMux
	h   http.Handler

	now    func() time.Time // time source; tests replace it
	checks chan struct{}    // bounds concurrent bcrypt comparisons

	mu       sync.Mutex
	sessions map[[32]byte]*session // by SHA-256 of the cookie token
	limiter  limiter

	logins *prometheus.CounterVec
}

// New validates o and returns a Server. Errors name the user or option at
// fault; a PasswordHash is never echoed (it may be a plain password put
// there by mistake).
func New(o Options) (*Server, error) {
	s := &Server{
		log:      o.Log,
		ttl:      o.SessionTTL,
		secure:   o.Secure,
		proxy:    o.TrustedProxy,
		cameras:  o.Cameras,
		title:    o.Title,
		now:      time.Now,
		checks:   make(chan struct{}, 2),
		sessions: make(map[[32]byte]*session),
		limiter:  newLimiter(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case s.ttl == 0:
		s.ttl = DefaultSessionTTL
	case s.ttl < 0:
		return nil, fmt.Errorf("web: session TTL %v: %w: must be positive", o.SessionTTL, ErrBadOption)
	}
	if s.cameras == nil {
		s.cameras = func() []CameraStatus { return nil }
	}
	if s.title == "" {
		s.title = "Veil"
	}
	for i, p := range o.Scripts {
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
			return nil, fmt.Errorf("web: scripts[%d] %q: %w: must be a same-origin path starting with a single /", i, p, ErrBadOption)
		}
	}
	s.scripts = append([]string(nil), o.Scripts...)
	if err := s.setUsers(o.Users); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}

	s.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_web_logins_total",
		Help: "Login attempts on the operator web server, by result (ok, failed, limited).",
	}, []string{"result"})
	for _, r := range []string{"ok", "failed", "limited"} {
		s.logins.WithLabelValues(r)
	}

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /login", s.loginForm)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.Handle("POST /logout", s.requireSession(http.HandlerFunc(s.logout), true, false))
	home := http.Handler(http.HandlerFunc(s.index))
	if o.Home != nil {
		home = o.Home
	}
	s.mux.Handle("GET /{$}", s.requireSession(home, false, false))
	s.mux.Handle("GET /api/cameras", s.requireSession(http.HandlerFunc(s.apiCameras), false, false))
	s.mux.HandleFunc("GET /static/veil.css", serveCSS)
	if o.Health != nil {
		s.mux.Handle("/healthz", o.Health)
	}
	if o.Metrics != nil {
		if err := o.Metrics.Register(s.logins); err != nil {
			return nil, fmt.Errorf("web: registering metrics: %w", err)
		}
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{}))
	}

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.refuse(w, r, http.StatusForbidden, "cross-origin request", "")
	}))
	s.h = securityHeaders(cop.Handler(s.mux))
	return s, nil
}

// Handler returns the server's root handler, to be served by an
// http.Server (set ReadHeaderTimeout; the handler adds no timeouts).
func (s *Server) Handler() http.Handler { return s.h }

// Handle mounts h at pattern (net/http ServeMux syntax, e.g.
// "POST /api/webrtc/offer") behind login: a request without a valid session
// gets a 303 redirect to /login when it is a GET or HEAD outside /api/, and
// 401 otherwise; an unsafe request (not GET, HEAD or OPTIONS) must also
// carry the CSRFHeader, or gets 403. h can read the user name with
// UserFromContext. Like ServeMux.Handle, Handle panics when pattern
// conflicts with a route already registered.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.requireSession(h, false, false))
}

// HandleAPI is Handle for machine-readable endpoints outside /api/ (such
// as a CSV download): a request without a valid session always gets 401,
// never a redirect to the login form.
func (s *Server) HandleAPI(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.requireSession(h, false, true))
}

// HandlePublic mounts h at pattern without login (the shoppers' consent
// pages and the sign's page); the security headers still apply, and h is
// responsible for its own CSRF and rate limits.
func (s *Server) HandlePublic(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// ClientIP is the request's client address as the server sees it: the
// connection's, or behind the trusted proxy the forwarded one.
func (s *Server) ClientIP(r *http.Request) string { return s.clientIP(r) }

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := indexPage.Execute(w, indexData{
		Title:   s.title,
		User:    sess.user,
		CSRF:    sess.csrf,
		Cameras: s.cameras(),
		Scripts: s.scripts,
	})
	if err != nil {
		s.log.Error("rendering index page", "err", err)
	}
}

func (s *Server) apiCameras(w http.ResponseWriter, r *http.Request) {
	cams := s.cameras()
	if cams == nil {
		cams = []CameraStatus{}
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(cams); err != nil {
		s.log.Warn("writing /api/cameras", "err", err)
	}
}

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// clientIP is the connection's remote address without the port or, for a
// request from the trusted proxy, the last X-Forwarded-For entry (the one
// the proxy added; entries before it come from the client and are not
// trusted).
func (s *Server) clientIP(r *http.Request) string {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		addr = addr[:i]
	}
	addr = strings.Trim(addr, "[]")
	if s.proxy == nil || !s.proxy.Equal(net.ParseIP(addr)) {
		return addr
	}
	fwd := r.Header.Values("X-Forwarded-For")
	if len(fwd) == 0 {
		return addr
	}
	last := fwd[len(fwd)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	if ip := net.ParseIP(strings.TrimSpace(last)); ip != nil {
		return ip.String()
	}
	return addr
}
