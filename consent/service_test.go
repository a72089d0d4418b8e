package consent

import (
	"encoding/json"
	"image"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-edge/veil/track"
)

// env is a consent service on a fake clock behind a real HTTP server.
type env struct {
	t      *testing.T
	svc    *Service
	ledger string
	srv    *httptest.Server
	mu     sync.Mutex
	now    time.Time
	gate   *Gate
}

var signZone = image.Rect(100, 100, 300, 400)

func newEnv(t *testing.T, rate int) *env {
	t.Helper()
	e := &env{t: t, now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), ledger: filepath.Join(t.TempDir(), "ledger.jsonl")}
	l, err := OpenLedger(e.ledger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.svc, err = NewService(Options{Box: "box-1", Key: testKey(t, 7), Ledger: l, Notice: DefaultNotice(),
		Zones: []Zone{{Camera: "sign", Name: "spot", Rect: signZone}}, TokenTTL: time.Minute, MaxDuration: 2 * time.Hour,
		Now: func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	e.gate = e.svc.Gate("sign")
	e.srv = httptest.NewServer(e.svc.Handler(WebOptions{RateLimit: rate}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

// tracks reports the camera's faces, as its pipeline does on every frame,
// and returns the IDs left unredacted.
func (e *env) tracks(faces ...track.Covered) []uint64 { return e.gate.Exempt(faces) }

// face is track id's 40 px face centred at (x, y), detected on a few
// keyframes.
func face(id uint64, x, y int) track.Covered {
	return track.Covered{ID: id, Box: image.Rect(x-20, y-20, x+20, y+20), Seen: 3}
}

// phone is one shopper's browser.
type phone struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) phone() *phone {
	jar, _ := cookiejar.New(nil)
	return &phone{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p *phone) do(method, path string, form url.Values, lang string) (int, string) {
	p.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, p.e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if lang != "" {
		req.Header.Set("Accept-Language", lang)
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(b); m != nil {
		p.csrf = string(m[1])
	}
	return resp.StatusCode, string(b)
}

func (p *phone) post(path string, kv ...string) (int, string) {
	f := url.Values{"csrf": {p.csrf}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return p.do(http.MethodPost, path, f, "")
}

func (e *env) token() string {
	tok, _, err := e.svc.IssueToken("sign")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) entries() []Entry {
	e.t.Helper()
	if _, err := VerifyLedger(e.ledger); err != nil {
		e.t.Fatalf("ledger: %v", err)
	}
	var out []Entry
	data, err := os.ReadFile(e.ledger)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var en Entry
		if err := json.Unmarshal([]byte(line), &en); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, en)
	}
	return out
}

func types(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, string(e.Type))
	}
	return strings.Join(s, ",")
}

// TestOptInFlow: decline binds nothing; yes + confirm binds the one track
// on the spot, which is then exempt while the other face is not; withdraw
// ends it from the next frame; the ledger records it all and verifies.
func TestOptInFlow(t *testing.T) {
	e := newEnv(t, 1000)
	ph := e.phone()

	tok := e.token()
	if code, body := ph.do(http.MethodGet, "/c/"+tok, nil, "zh-CN,zh;q=0.9,en;q=0.5"); code != 200 || !strings.Contains(body, DefaultNotice().Texts["zh-CN"].Title) ||
		!strings.Contains(body, `<input type="checkbox" name="agree" id="agree">`) || !strings.Contains(body, `id="yes"`) || !strings.Contains(body, `id="no"`) {
		t.Fatalf("notice page (zh-CN): %d\n%s", code, body)
	}
	if code, body := ph.do(http.MethodGet, "/c/"+tok+"?lang=en", nil, "zh-CN"); code != 200 || !strings.Contains(body, DefaultNotice().Texts["en"].Title) {
		t.Fatalf("notice page (switched to en): %d\n%s", code, body)
	}
	if code, body := ph.post("/c/"+tok, "choice", "no", "lang", "en"); code != 200 || !strings.Contains(body, DefaultNotice().Texts["en"].Declined) {
		t.Fatalf("decline: %d\n%s", code, body)
	}
	if es := e.entries(); len(es) != 0 {
		t.Fatalf("a decline wrote %s", types(es))
	}

	tok = e.token()
	ph.do(http.MethodGet, "/c/"+tok, nil, "en")
	// Yes without ticking the box: asked again, nothing recorded, code unused.
	if code, body := ph.post("/c/"+tok, "choice", "yes"); code != 200 || !strings.Contains(body, DefaultNotice().Texts["en"].AgreeFirst) || len(e.entries()) != 0 {
		t.Fatalf("yes unticked: %d\n%s", code, body)
	}
	if code, _ := ph.post("/c/"+tok, "choice", "yes", "agree", "on"); code != http.StatusSeeOther {
		t.Fatalf("yes: %d", code)
	}
	if got := types(e.entries()); got != "grant" {
		t.Fatalf("ledger %s, want grant", got)
	}
	ph.do(http.MethodGet, "/c/consent", nil, "en")
	e.tracks(face(1, 200, 250), face(2, 600, 250)) // 1 on the spot, 2 elsewhere
	if code, body := ph.post("/c/consent/confirm"); code != 200 || !strings.Contains(body, `id="withdraw"`) {
		t.Fatalf("confirm: %d\n%s", code, body)
	}
	if ex := e.tracks(face(1, 205, 250), face(2, 600, 250)); len(ex) != 1 || ex[0] != 1 {
		t.Fatalf("exempt %v, want [1]", ex)
	}
	code, body := ph.do(http.MethodGet, "/c/consent/receipt", nil, "")
	if code != 200 {
		t.Fatalf("receipt: %d %s", code, body)
	}
	r, err := VerifyReceipt([]byte(body), e.svc.PublicKey())
	if err != nil || r.NoticeHash != DefaultNotice().Hash() || r.Lang != "en" || len(r.Purposes) == 0 {
		t.Fatalf("receipt %+v: %v", r, err)
	}
	if code, _ := ph.post("/c/consent/withdraw"); code != 200 {
		t.Fatalf("withdraw: %d", code)
	}
	if ex := e.tracks(face(1, 205, 250)); len(ex) != 0 {
		t.Fatalf("exempt %v after withdrawal", ex)
	}
	es := e.entries()
	if got := types(es); got != "grant,bind,unbind,withdraw" {
		t.Fatalf("ledger %s", got)
	}
	g := es[0]
	if g.NoticeVersion != DefaultNotice().Version || g.NoticeHash != DefaultNotice().Hash() || g.Lang != "en" || g.Camera != "sign" || g.Zone != "spot" || g.Expires == nil {
		t.Fatalf("grant entry %+v", g)
	}
}

// TestRefusals: each bad request gets a clear status and binds nothing.
func TestRefusals(t *testing.T) {
	type step func(e *env, ph *phone) (int, string)
	granted := func(e *env, ph *phone) {
		tok := e.token()
		ph.do(http.MethodGet, "/c/"+tok, nil, "en")
		if code, _ := ph.post("/c/"+tok, "choice", "yes", "agree", "on"); code != http.StatusSeeOther {
			t.Fatalf("grant: %d", code)
		}
		ph.do(http.MethodGet, "/c/consent", nil, "en")
	}
	tests := []struct {
		name string
		run  step
		code int
		want string
	}{
		{"reused token", func(e *env, ph *phone) (int, string) {
			tok := e.token()
			ph.do(http.MethodGet, "/c/"+tok, nil, "en")
			ph.post("/c/"+tok, "choice", "no")
			return ph.do(http.MethodGet, "/c/"+tok, nil, "en")
		}, http.StatusGone, "already used"},
		{"expired token", func(e *env, ph *phone) (int, string) {
			tok := e.token()
			e.advance(61 * time.Second)
			return ph.do(http.MethodGet, "/c/"+tok, nil, "en")
		}, http.StatusGone, "expired"},
		{"tampered token", func(e *env, ph *phone) (int, string) {
			tok := []byte(e.token())
			tok[6] ^= 1
			return ph.do(http.MethodGet, "/c/"+string(tok), nil, "en")
		}, http.StatusBadRequest, "not"},
		{"token from another box", func(e *env, ph *phone) (int, string) {
			other := Token{Box: "box-2", Camera: "sign", Zone: "spot", Notice: DefaultNotice().Version, Nonce: NewNonce(), Expires: e.now.Add(time.Minute).Unix()}
			return ph.do(http.MethodGet, "/c/"+other.Sign(testKey(t, 9)), nil, "en")
		}, http.StatusBadRequest, "not issued by this shop"},
		{"token of this key naming another box", func(e *env, ph *phone) (int, string) {
			other := Token{Box: "box-2", Camera: "sign", Zone: "spot", Notice: DefaultNotice().Version, Nonce: NewNonce(), Expires: e.now.Add(time.Minute).Unix()}
			return ph.do(http.MethodGet, "/c/"+other.Sign(testKey(t, 7)), nil, "en")
		}, http.StatusBadRequest, "another camera box"},
		{"notice changed", func(e *env, ph *phone) (int, string) {
			tok := e.token()
			n := DefaultNotice()
			n.Version = "2027-01-1"
			e.svc.SetNotice(n)
			return ph.do(http.MethodGet, "/c/"+tok, nil, "en")
		}, http.StatusGone, "notice has changed"},
		{"no CSRF token", func(e *env, ph *phone) (int, string) {
			tok := e.token()
			ph.do(http.MethodGet, "/c/"+tok, nil, "en")
			return ph.do(http.MethodPost, "/c/"+tok, url.Values{"choice": {"yes"}, "agree": {"on"}}, "")
		}, http.StatusForbidden, "expired"},
		{"confirm with nobody on the spot", func(e *env, ph *phone) (int, string) {
			granted(e, ph)
			e.tracks(face(2, 600, 250))
			return ph.post("/c/consent/confirm")
		}, http.StatusConflict, DefaultNotice().Texts["en"].NoneInZone},
		{"confirm with a face detected on one keyframe only", func(e *env, ph *phone) (int, string) {
			granted(e, ph)
			one := face(1, 200, 250)
			one.Seen = 1
			e.tracks(one)
			return ph.post("/c/consent/confirm")
		}, http.StatusConflict, DefaultNotice().Texts["en"].NoneInZone},
		{"confirm with two on the spot", func(e *env, ph *phone) (int, string) {
			granted(e, ph)
			e.tracks(face(1, 150, 200), face(3, 250, 350))
			return ph.post("/c/consent/confirm")
		}, http.StatusConflict, DefaultNotice().Texts["en"].SeveralInZone},
		{"confirm while the camera is down", func(e *env, ph *phone) (int, string) {
			granted(e, ph)
			return ph.post("/c/consent/confirm")
		}, http.StatusServiceUnavailable, "not running"},
		{"forged withdraw", func(e *env, ph *phone) (int, string) {
			granted(e, ph)
			e.tracks(face(1, 200, 250))
			ph.post("/c/consent/confirm")
			forger := e.phone()
			forger.do(http.MethodGet, "/c/"+e.token(), nil, "en") // a CSRF cookie of its own
			u, _ := url.Parse(e.srv.URL + "/c/")
			var id string
			for _, c := range ph.c.Jar.Cookies(u) {
				if c.Name == cookieConsent {
					id, _, _ = strings.Cut(c.Value, ".")
				}
			}
			forger.c.Jar.SetCookies(u, []*http.Cookie{{Name: cookieConsent, Value: id + "." + NewNonce(), Path: "/c/"}})
			code, body := forger.post("/c/consent/withdraw")
			if ex := e.tracks(face(1, 200, 250)); len(ex) != 1 {
				t.Errorf("a forged withdraw ended the consent: exempt %v", ex)
			}
			return code, body
		}, http.StatusForbidden, "secret is wrong"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1000)
			before := len(e.entries())
			code, body := tc.run(e, e.phone())
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, want %d with %q:\n%s", code, tc.code, tc.want, body)
			}
			for _, en := range e.entries()[before:] {
				if en.Type == EventBind && tc.name != "forged withdraw" {
					t.Errorf("bound despite the refusal: %+v", en)
				}
			}
			if tc.name != "forged withdraw" {
				if ex := e.tracks(face(1, 200, 250)); len(ex) != 0 {
					t.Errorf("exempt %v after a refusal", ex)
				}
			}
		})
	}
}

// TestRateLimit: one client beyond the limit gets 429 without the request
// being handled.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, 5)
	ph := e.phone()
	tok := e.token()
	for i := range 5 {
		if code, _ := ph.do(http.MethodGet, "/c/"+tok, nil, "en"); code != 200 {
			t.Fatalf("request %d: %d", i+1, code)
		}
	}
	if code, _ := ph.do(http.MethodGet, "/c/"+tok, nil, "en"); code != http.StatusTooManyRequests {
		t.Fatalf("6th request: %d, want 429", code)
	}
}

// TestConsentEnds: a bound consent ends when its track leaves, when its time
// is up and when the notice changes (fresh consent needed); the face is
// redacted from that frame on.
func TestConsentEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(e *env) []uint64
		reason string
	}{
		{"track ended", func(e *env) []uint64 { return e.tracks(face(2, 600, 250)) }, "track ended"},
		{"expired", func(e *env) []uint64 { e.advance(2*time.Hour + time.Second); return e.tracks(face(1, 200, 250)) }, "expired"},
		{"notice changed", func(e *env) []uint64 {
			n := DefaultNotice()
			n.Version = "2027-01-1"
			e.svc.SetNotice(n)
			return e.tracks(face(1, 200, 250))
		}, "notice changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1000)
			ph := e.phone()
			tok := e.token()
			ph.do(http.MethodGet, "/c/"+tok, nil, "en")
			ph.post("/c/"+tok, "choice", "yes", "agree", "on")
			ph.do(http.MethodGet, "/c/consent", nil, "en")
			e.tracks(face(1, 200, 250))
			if code, body := ph.post("/c/consent/confirm"); code != 200 {
				t.Fatalf("confirm: %d %s", code, body)
			}
			if ex := tc.end(e); len(ex) != 0 {
				t.Fatalf("exempt %v after the consent ended", ex)
			}
			es := e.entries()
			if got := types(es); got != "grant,bind,unbind,expire" || es[3].Reason != tc.reason {
				t.Fatalf("ledger %s (last reason %q)", got, es[len(es)-1].Reason)
			}
			if _, body := ph.do(http.MethodGet, "/c/consent", nil, "en"); !strings.Contains(body, DefaultNotice().Texts["en"].Ended) {
				t.Fatalf("status page after the end:\n%s", body)
			}
		})
	}
}

// TestRestartEndsRunningConsents: a consent running when veil stopped is
// ended in the ledger by the next start (its track is gone), so the ledger
// never shows it running for ever and retention can purge it.
func TestRestartEndsRunningConsents(t *testing.T) {
	e := newEnv(t, 1000)
	ph := e.phone()
	tok := e.token()
	ph.do(http.MethodGet, "/c/"+tok, nil, "en")
	ph.post("/c/"+tok, "choice", "yes", "agree", "on")
	l, err := OpenLedger(e.ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := NewService(Options{Box: "box-1", Key: testKey(t, 7), Ledger: l, Notice: DefaultNotice(), TokenTTL: time.Minute, MaxDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	es := e.entries()
	if got := types(es); got != "grant,expire" || es[1].Reason != "veil restarted" || es[1].ConsentID != es[0].ConsentID {
		t.Fatalf("ledger %s after a restart (%+v)", got, es[len(es)-1])
	}
	if active, err := l.Active(); err != nil || len(active) != 0 {
		t.Fatalf("still active after the restart: %v %v", active, err)
	}
}

// TestEndedGrantsForgotten: the box does not keep ended consents in memory
// for ever (a box runs for months; the gate walks them every frame): one
// maximum duration after its expiry an ended grant is gone, and its phone
// is told the consent is not known.
func TestEndedGrantsForgotten(t *testing.T) {
	e := newEnv(t, 1000)
	ph := e.phone()
	tok := e.token()
	ph.do(http.MethodGet, "/c/"+tok, nil, "en")
	ph.post("/c/"+tok, "choice", "yes", "agree", "on")
	ph.do(http.MethodGet, "/c/consent", nil, "en")
	ph.post("/c/consent/withdraw")
	e.advance(2 * time.Hour) // expiry: still known, as ended
	e.tracks()
	if n := len(e.svc.grants); n != 1 {
		t.Fatalf("%d grants kept at expiry, want the ended one", n)
	}
	e.advance(2*time.Hour + time.Second)
	e.tracks()
	if n := len(e.svc.grants); n != 0 {
		t.Fatalf("%d grants kept after expiry + max duration, want 0", n)
	}
	if code, _ := ph.do(http.MethodGet, "/c/consent", nil, "en"); code != http.StatusForbidden {
		t.Fatalf("status page for a forgotten consent: %d, want 403", code)
	}
}
