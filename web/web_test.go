package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	alicePW = "correct horse"
	bobPW   = "battery staple"
)

// testUsers hashes at bcrypt.MinCost so tests stay fast.
var testUsers = sync.OnceValue(func() []User {
	h := func(pw string) string {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	return []User{{Name: "alice", PasswordHash: h(alicePW)}, {Name: "bob", PasswordHash: h(bobPW)}}
})

var testCameras = []CameraStatus{
	{Name: "front", Healthy: true, FPS: 12.5, Viewers: 1},
	{Name: "till", Healthy: false, FPS: 0, Viewers: 0, LastError: "rtsp: connection refused"},
}

// logBuf collects log output from concurrent handlers.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	logs  *logBuf
	clock *clock
	reg   *prometheus.Registry
}

// newEnv serves a Server with the test users and cameras (over TLS when
// o.Secure), a fake clock, an echo handler mounted with Handle at
// "POST /api/echo" and "GET /live", and a /healthz that says ok.
func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	e := &env{t: t, logs: &logBuf{}, clock: &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	if o.Users == nil {
		o.Users = testUsers()
	}
	o.Log = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Cameras = func() []CameraStatus { return testCameras }
	o.Health = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	o.Metrics = e.reg
	srv, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.now = e.clock.Now
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFromContext(r.Context())
		io.WriteString(w, u)
	})
	srv.Handle("POST /api/echo", echo)
	srv.Handle("GET /live", echo)
	srv.HandleAPI("GET /export.txt", echo)
	e.srv = srv
	if o.Secure {
		e.ts = httptest.NewTLSServer(srv.Handler())
	} else {
		e.ts = httptest.NewServer(srv.Handler())
	}
	t.Cleanup(func() {
		e.ts.Close()
		for _, pw := range []string{alicePW, bobPW, "wrong-password"} {
			if strings.Contains(e.logs.String(), pw) {
				t.Errorf("a password is in the log:\n%s", e.logs)
			}
		}
		if t.Failed() {
			t.Logf("log:\n%s", e.logs)
		}
	})
	return e
}

// client is a browser: its own cookie jar, redirects not followed.
func (e *env) client() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{
		Transport:     e.ts.Client().Transport,
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (e *env) do(c *http.Client, method, path string, body io.Reader, hdr ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *env) login(c *http.Client, user, pw string, hdr ...string) *http.Response {
	e.t.Helper()
	form := url.Values{"user": {user}, "password": {pw}}
	return e.do(c, "POST", "/login", strings.NewReader(form.Encode()), hdr...)
}

// loggedIn returns a client logged in as user.
func (e *env) loggedIn(user, pw string) *http.Client {
	e.t.Helper()
	c := e.client()
	if resp := e.login(c, user, pw); resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d, want 303", user, resp.StatusCode)
	}
	return c
}

var csrfMeta = regexp.MustCompile(`<meta name="veil-csrf" content="([^"]+)">`)

// csrf reads the CSRF token from the index page.
func (e *env) csrf(c *http.Client) string {
	e.t.Helper()
	resp := e.do(c, "GET", "/", nil)
	m := csrfMeta.FindSubmatch(readAll(e.t, resp))
	if resp.StatusCode != http.StatusOK || m == nil {
		e.t.Fatalf("GET /: status %d, no CSRF token", resp.StatusCode)
	}
	return string(m[1])
}

// sessionCookie is c's session cookie for the server.
func (e *env) sessionCookie(c *http.Client) *http.Cookie {
	u, _ := url.Parse(e.ts.URL)
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == e.srv.cookieName() {
			return k
		}
	}
	e.t.Fatal("no session cookie in the jar")
	return nil
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRefused(t *testing.T) {
	const ttl = time.Minute
	for _, tc := range []struct {
		name string
		// setup runs before the bystander logs in; refused makes the
		// request that must be refused.
		setup   func(e *env, c *http.Client)
		refused func(e *env, c *http.Client) *http.Response
		status  int
		body    string // substring of the response body
		logs    []string
	}{{
		name:    "wrong password",
		refused: func(e *env, c *http.Client) *http.Response { return e.login(c, "alice", "wrong-password") },
		status:  http.StatusUnauthorized,
		body:    "Wrong user name or password.",
		logs:    []string{`level=WARN msg="login failed" user=alice remote=127.0.0.1`},
	}, {
		name:    "unknown user",
		refused: func(e *env, c *http.Client) *http.Response { return e.login(c, "mallory", "wrong-password") },
		status:  http.StatusUnauthorized,
		body:    "Wrong user name or password.",
		logs:    []string{`level=WARN msg="login failed" user=mallory remote=127.0.0.1`},
	}, {
		name:    "empty form",
		refused: func(e *env, c *http.Client) *http.Response { return e.do(c, "POST", "/login", strings.NewReader("")) },
		status:  http.StatusUnauthorized,
		logs:    []string{`msg="login failed" user="" `},
	}, {
		name:    "missing session, API",
		refused: func(e *env, c *http.Client) *http.Response { return e.do(c, "GET", "/api/cameras", nil) },
		status:  http.StatusUnauthorized,
		logs:    []string{`msg="refused request" reason="no session cookie" method=GET path=/api/cameras`},
	}, {
		name:    "missing session, page",
		refused: func(e *env, c *http.Client) *http.Response { return e.do(c, "GET", "/", nil) },
		status:  http.StatusSeeOther,
		logs:    []string{`msg="refused request" reason="no session cookie" method=GET path=/ `},
	}, {
		name: "forged session",
		refused: func(e *env, c *http.Client) *http.Response {
			return e.do(c, "GET", "/api/cameras", nil, "Cookie", "veil_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		},
		status: http.StatusUnauthorized,
		logs:   []string{`reason="unknown session"`},
	}, {
		name: "expired session",
		setup: func(e *env, c *http.Client) {
			e.loggedInAs(c, "alice", alicePW)
			e.clock.Advance(ttl / 2) // the bystander logs in now, so outlives alice
		},
		refused: func(e *env, c *http.Client) *http.Response {
			e.clock.Advance(ttl/2 + time.Second)
			return e.do(c, "GET", "/api/cameras", nil)
		},
		status: http.StatusUnauthorized,
		logs:   []string{`reason="session expired" method=GET path=/api/cameras`},
	}, {
		name:  "logged-out session",
		setup: func(e *env, c *http.Client) { e.loggedInAs(c, "alice", alicePW) },
		refused: func(e *env, c *http.Client) *http.Response {
			old := e.sessionCookie(c)
			if resp := e.do(c, "POST", "/logout", nil, CSRFHeader, e.csrf(c)); resp.StatusCode != http.StatusSeeOther {
				e.t.Fatalf("logout: status %d, want 303", resp.StatusCode)
			}
			return e.do(e.client(), "GET", "/api/cameras", nil, "Cookie", old.Name+"="+old.Value)
		},
		status: http.StatusUnauthorized,
		logs:   []string{`level=INFO msg=logout user=alice`, `reason="unknown session"`},
	}, {
		name:    "missing CSRF header",
		setup:   func(e *env, c *http.Client) { e.loggedInAs(c, "alice", alicePW) },
		refused: func(e *env, c *http.Client) *http.Response { return e.do(c, "POST", "/api/echo", nil) },
		status:  http.StatusForbidden,
		logs:    []string{`reason="missing or wrong CSRF token" method=POST path=/api/echo remote=127.0.0.1 status=403 user=alice`},
	}, {
		name:  "bad CSRF header",
		setup: func(e *env, c *http.Client) { e.loggedInAs(c, "alice", alicePW) },
		refused: func(e *env, c *http.Client) *http.Response {
			return e.do(c, "POST", "/api/echo", nil, CSRFHeader, strings.Repeat("A", 43))
		},
		status: http.StatusForbidden,
		logs:   []string{`reason="missing or wrong CSRF token"`},
	}, {
		name:  "another session's CSRF token",
		setup: func(e *env, c *http.Client) { e.loggedInAs(c, "alice", alicePW) },
		refused: func(e *env, c *http.Client) *http.Response {
			other := e.csrf(e.loggedIn("bob", bobPW))
			return e.do(c, "POST", "/api/echo", nil, CSRFHeader, other)
		},
		status: http.StatusForbidden,
		logs:   []string{`reason="missing or wrong CSRF token"`},
	}, {
		name:  "logout without CSRF",
		setup: func(e *env, c *http.Client) { e.loggedInAs(c, "alice", alicePW) },
		refused: func(e *env, c *http.Client) *http.Response {
			return e.do(c, "POST", "/logout", strings.NewReader("csrf=nope"))
		},
		status: http.StatusForbidden,
		logs:   []string{`reason="missing or wrong CSRF token" method=POST path=/logout`},
	}, {
		name: "cross-origin login",
		refused: func(e *env, c *http.Client) *http.Response {
			return e.login(c, "alice", alicePW, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
		},
		status: http.StatusForbidden,
		logs:   []string{`reason="cross-origin request" method=POST path=/login`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{SessionTTL: ttl})
			c := e.client()
			if tc.setup != nil {
				tc.setup(e, c)
			}
			bystander := e.loggedIn("bob", bobPW)

			resp := tc.refused(e, c)
			body := readAll(t, resp)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusSeeOther {
				if loc := resp.Header.Get("Location"); loc != "/login" {
					t.Errorf("Location %q, want /login", loc)
				}
			}
			if !bytes.Contains(body, []byte(tc.body)) {
				t.Errorf("body does not contain %q:\n%s", tc.body, body)
			}
			for _, l := range tc.logs {
				if !strings.Contains(e.logs.String(), l) {
					t.Errorf("log lacks %q", l)
				}
			}
			if resp := e.do(bystander, "GET", "/api/cameras", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("bystander's session: status %d, want 200", resp.StatusCode)
			}
		})
	}
}

// loggedInAs logs c in, failing the test unless it works.
func (e *env) loggedInAs(c *http.Client, user, pw string) {
	e.t.Helper()
	if resp := e.login(c, user, pw); resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d, want 303", user, resp.StatusCode)
	}
}

func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		secure bool
		cookie string
	}{
		{secure: false, cookie: "veil_session"},
		{secure: true, cookie: "__Host-veil_session"},
	} {
		t.Run(fmt.Sprintf("secure=%v", tc.secure), func(t *testing.T) {
			e := newEnv(t, Options{Secure: tc.secure})
			c := e.client()
			resp := e.login(c, "alice", alicePW)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
				t.Fatalf("login: status %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
			}
			var got *http.Cookie
			for _, k := range resp.Cookies() {
				if k.Name == tc.cookie {
					got = k
				}
			}
			if got == nil {
				t.Fatalf("no cookie %q in %q", tc.cookie, resp.Header.Values("Set-Cookie"))
			}
			if !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Secure != tc.secure || got.Path != "/" || got.MaxAge != int(DefaultSessionTTL/time.Second) {
				t.Errorf("cookie %q: want HttpOnly, SameSite=Strict, Secure=%v, Path=/, Max-Age=%d", resp.Header.Get("Set-Cookie"), tc.secure, int(DefaultSessionTTL/time.Second))
			}
			if len(got.Value) != 43 { // 32 random bytes, base64url
				t.Errorf("token %q: %d characters, want 43", got.Value, len(got.Value))
			}
			if !strings.Contains(e.logs.String(), `level=INFO msg=login user=alice remote=127.0.0.1`) {
				t.Errorf("login not logged")
			}

			resp = e.do(c, "GET", "/", nil)
			page := string(readAll(t, resp))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /: status %d", resp.StatusCode)
			}
			for _, want := range []string{
				`<h2>front</h2>`,
				`<video id="video-front" muted autoplay playsinline></video>`,
				`<dd class="ok">healthy</dd>`,
				`<dt>FPS</dt><dd>12.5</dd>`,
				`<dt>Viewers</dt><dd>1</dd>`,
				`<video id="video-till" muted autoplay playsinline></video>`,
				`<dd class="bad">unhealthy: rtsp: connection refused</dd>`,
				`<span>alice</span>`,
			} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q:\n%s", want, page)
				}
			}

			resp = e.do(c, "GET", "/api/cameras", nil)
			const wantJSON = `[{"name":"front","healthy":true,"fps":12.5,"viewers":1},{"name":"till","healthy":false,"fps":0,"viewers":0,"last_error":"rtsp: connection refused"}]` + "\n"
			if got := string(readAll(t, resp)); got != wantJSON || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("/api/cameras: %s %q\nwant %q", resp.Header.Get("Content-Type"), got, wantJSON)
			}

			// Logout with the form field, as the page's no-JS button does.
			csrf := e.csrf(c)
			resp = e.do(c, "POST", "/logout", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
				t.Fatalf("logout: status %d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if resp := e.do(c, "GET", "/api/cameras", nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("after logout: status %d, want 401", resp.StatusCode)
			}
		})
	}
}

func TestPublicAndMounted(t *testing.T) {
	e := newEnv(t, Options{})
	anon := e.client()
	alice := e.loggedIn("alice", alicePW)
	aliceCSRF := e.csrf(alice)
	for _, tc := range []struct {
		name   string
		c      *http.Client
		method string
		path   string
		hdr    []string
		status int
		body   string
	}{
		{"login form", anon, "GET", "/login", nil, 200, `<form method="post" action="/login">`},
		{"healthz", anon, "GET", "/healthz", nil, 200, "ok\n"},
		{"metrics", anon, "GET", "/metrics", nil, 200, `veil_web_logins_total{result="ok"} 1`},
		{"css", anon, "GET", "/static/veil.css", nil, 200, "body{"},
		{"not found", anon, "GET", "/nope", nil, 404, ""},
		{"mounted POST, no session", anon, "POST", "/api/echo", nil, 401, ""},
		{"mounted page, no session", anon, "GET", "/live", nil, 303, ""},
		{"mounted POST, session, CSRF", alice, "POST", "/api/echo", []string{CSRFHeader, aliceCSRF}, 200, "alice"},
		{"mounted page, session", alice, "GET", "/live", nil, 200, "alice"},
		{"mounted API, no session", anon, "GET", "/export.txt", nil, 401, ""},
		{"mounted API, session", alice, "GET", "/export.txt", nil, 200, "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(tc.c, tc.method, tc.path, nil, tc.hdr...)
			body := string(readAll(t, resp))
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("status %d, body %q; want %d containing %q", resp.StatusCode, body, tc.status, tc.body)
			}
			for h, want := range map[string]string{
				"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	status := func(resp *http.Response) int { return resp.StatusCode }

	// The fifth failure locks alice for 1 s, then 2 s, ...; even the right
	// password is refused meanwhile, without being checked.
	for i := range userFailureLimit {
		if got := status(e.login(c, "alice", "wrong-password")); got != 401 {
			t.Fatalf("failure %d: status %d, want 401", i+1, got)
		}
	}
	resp := e.login(c, "alice", alicePW)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("locked: status %d, Retry-After %q; want 429, 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(e.logs.String(), `msg="login refused: too many failures" user=alice remote=127.0.0.1 retry_after_s=1`) {
		t.Error("lockout not logged")
	}
	// bob, from the same IP, is not locked out by alice's failures.
	if got := status(e.login(e.client(), "bob", bobPW)); got != 303 {
		t.Errorf("bob: status %d, want 303", got)
	}
	e.clock.Advance(time.Second)
	if got := status(e.login(c, "alice", "wrong-password")); got != 401 {
		t.Errorf("after the lockout: status %d, want 401", got)
	}
	if resp := e.login(c, "alice", alicePW); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("second lockout: status %d, Retry-After %q; want 429, 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.clock.Advance(2 * time.Second)
	if got := status(e.login(c, "alice", alicePW)); got != 303 {
		t.Errorf("after the second lockout, right password: status %d, want 303", got)
	}
	// A success clears alice's count: the next failure does not lock her.
	e.login(c, "alice", "wrong-password")
	if got := status(e.login(c, "alice", alicePW)); got != 303 {
		t.Errorf("after success and one failure: status %d, want 303", got)
	}

	// An unknown name locks exactly like a known one (no user enumeration).
	for range userFailureLimit {
		e.login(c, "mallory", "wrong-password")
	}
	if got := status(e.login(c, "mallory", "wrong-password")); got != 429 {
		t.Errorf("unknown user: status %d, want 429", got)
	}

	// Failures across many names lock the client IP.
	ipFails := userFailureLimit + 1 + 1 + userFailureLimit // checked failures so far: alice's and mallory's
	for i := ipFails; i < ipFailureLimit; i++ {
		e.login(c, fmt.Sprintf("guess%d", i), "wrong-password")
	}
	if got := status(e.login(e.client(), "bob", bobPW)); got != 429 {
		t.Errorf("IP over its limit: bob gets %d, want 429", got)
	}
	e.clock.Advance(lockoutBase)
	if got := status(e.login(e.client(), "bob", bobPW)); got != 303 {
		t.Errorf("IP lockout over: bob gets %d, want 303", got)
	}

	if m := testutilCount(t, e, "failed"); m < ipFailureLimit {
		t.Errorf("veil_web_logins_total{result=failed} = %d, want ≥ %d", m, ipFailureLimit)
	}
}

// testutilCount reads veil_web_logins_total{result} from /metrics.
func testutilCount(t *testing.T, e *env, result string) int {
	t.Helper()
	body := string(readAll(t, e.do(e.client(), "GET", "/metrics", nil)))
	var n int
	for _, line := range strings.Split(body, "\n") {
		if _, err := fmt.Sscanf(line, `veil_web_logins_total{result="`+result+`"} %d`, &n); err == nil {
			return n
		}
	}
	t.Fatalf("no veil_web_logins_total{result=%q} in /metrics", result)
	return 0
}

func TestNewRejects(t *testing.T) {
	good := testUsers()[0]
	for _, tc := range []struct {
		name string
		o    Options
		err  error
		msg  string
	}{
		{"no users", Options{}, ErrNoUsers, "no users configured"},
		{"plain password", Options{Users: []User{{Name: "alice", PasswordHash: "hunter2"}}}, ErrNotBcrypt, `users[0] "alice": password hash is not a bcrypt hash`},
		{"md5 crypt", Options{Users: []User{good, {Name: "bob", PasswordHash: "$1$abcdefgh$0123456789abcdefghijkl"}}}, ErrNotBcrypt, `users[1] "bob"`},
		{"empty name", Options{Users: []User{{PasswordHash: good.PasswordHash}}}, ErrBadUser, `users[0] ""`},
		{"duplicate", Options{Users: []User{good, good}}, ErrBadUser, `users[1] "alice": bad user name: duplicate`},
		{"control character", Options{Users: []User{{Name: "a\nb", PasswordHash: good.PasswordHash}}}, ErrBadUser, "control characters"},
		{"negative TTL", Options{Users: []User{good}, SessionTTL: -time.Second}, ErrBadOption, "session TTL -1s"},
		{"off-site script", Options{Users: []User{good}, Scripts: []string{"//cdn.example/x.js"}}, ErrBadOption, `scripts[0] "//cdn.example/x.js"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.msg) {
				t.Fatalf("New: %v; want %v containing %q", err, tc.err, tc.msg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes the password: %v", err)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	for _, tc := range []struct {
		pw      string
		wantErr bool
	}{
		{"correct horse battery staple", false},
		{"", true},
		{strings.Repeat("x", 73), true}, // bcrypt would truncate at 72
	} {
		h, err := HashPassword(tc.pw)
		if (err != nil) != tc.wantErr {
			t.Fatalf("HashPassword(%d bytes): %v, want error %v", len(tc.pw), err, tc.wantErr)
		}
		if err != nil {
			continue
		}
		if cost, _ := bcrypt.Cost([]byte(h)); cost != HashCost || bcrypt.CompareHashAndPassword([]byte(h), []byte(tc.pw)) != nil {
			t.Errorf("hash %q: cost %d, or does not match", h, cost)
		}
		if _, err := New(Options{Users: []User{{Name: "op", PasswordHash: h}}}); err != nil {
			t.Errorf("New with a HashPassword hash: %v", err)
		}
	}
}

// TestClientIP: X-Forwarded-For is believed only from the trusted proxy,
// and only its last entry (the one the proxy appended).
func TestClientIP(t *testing.T) {
	proxy := net.ParseIP("10.0.0.1")
	tests := []struct {
		name   string
		proxy  net.IP
		remote string
		xff    []string
		want   string
	}{
		{"no proxy configured", nil, "10.0.0.1:5000", []string{"1.2.3.4"}, "10.0.0.1"},
		{"direct client ignores header", proxy, "192.168.1.9:5000", []string{"1.2.3.4"}, "192.168.1.9"},
		{"from the proxy", proxy, "10.0.0.1:5000", []string{"192.168.1.20"}, "192.168.1.20"},
		{"client-sent entries before the proxy's", proxy, "10.0.0.1:5000", []string{"6.6.6.6, 192.168.1.20"}, "192.168.1.20"},
		{"several headers: the last", proxy, "10.0.0.1:5000", []string{"6.6.6.6", "192.168.1.21"}, "192.168.1.21"},
		{"garbage from the proxy", proxy, "10.0.0.1:5000", []string{"not-an-ip"}, "10.0.0.1"},
		{"proxy without header", proxy, "10.0.0.1:5000", nil, "10.0.0.1"},
		{"IPv6 proxy", net.ParseIP("::1"), "[::1]:5000", []string{"fd00::7"}, "fd00::7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{proxy: tc.proxy}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := s.clientIP(r); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestHomeAndTitle checks Options.Home and Options.Title: the home handler
// replaces the camera list at / behind login, sees the user and the CSRF
// token, and that token logs out; the title names the login page. Without
// them, the camera list and "Veil" stay.
func TestHomeAndTitle(t *testing.T) {
	home := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, uok := UserFromContext(r.Context())
		tok, tok2 := CSRFFromContext(r.Context())
		fmt.Fprintf(w, "home of %s (%v) csrf=%s (%v)", u, uok, tok, tok2)
	})
	for _, tc := range []struct {
		name      string
		o         Options
		loginPage []string // substrings of GET /login
		homePage  *regexp.Regexp
	}{{
		name:      "default",
		o:         Options{},
		loginPage: []string{"<title>Veil: log in</title>", "<h1>Veil</h1>"},
		homePage:  regexp.MustCompile(`(?s)<title>Veil</title>.*<h1>Veil</h1>.*data-camera="front".*data-camera="till"`),
	}, {
		name:      "home and title",
		o:         Options{Home: home, Title: "Veil HQ"},
		loginPage: []string{"<title>Veil HQ: log in</title>", "<h1>Veil HQ</h1>"},
		homePage:  regexp.MustCompile(`^home of alice \(true\) csrf=([A-Za-z0-9_-]{43}) \(true\)$`),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o)
			anon := e.client()
			resp := e.do(anon, "GET", "/login", nil)
			body := string(readAll(t, resp))
			for _, want := range tc.loginPage {
				if !strings.Contains(body, want) {
					t.Errorf("login page lacks %q:\n%s", want, body)
				}
			}
			if resp := e.do(anon, "GET", "/", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
				t.Errorf("GET / without a session: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
			}
			alice := e.loggedIn("alice", alicePW)
			resp = e.do(alice, "GET", "/", nil)
			body = string(readAll(t, resp))
			m := tc.homePage.FindStringSubmatch(body)
			if resp.StatusCode != http.StatusOK || m == nil {
				t.Fatalf("GET /: %d %q, want 200 matching %s", resp.StatusCode, body, tc.homePage)
			}
			if tc.o.Home == nil {
				return
			}
			// The token Home saw is the session's: it logs out.
			form := url.Values{"csrf": {m[1]}}
			if resp := e.do(alice, "POST", "/logout", strings.NewReader(form.Encode())); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout with Home's token: %d, want 303", resp.StatusCode)
			}
			if resp := e.do(alice, "GET", "/", nil); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("GET / after logout: %d, want 303", resp.StatusCode)
			}
		})
	}
	if tok, ok := CSRFFromContext(t.Context()); ok || tok != "" {
		t.Errorf("CSRFFromContext without a session: %q, %v", tok, ok)
	}
}
