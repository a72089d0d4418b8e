package relay_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"image"
	"io"
	"log/slog"
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

	"github.com/veil-edge/veil/box/mqttsub"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/relay"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/track"
)

var zone = image.Rect(100, 100, 300, 400)

// box is a shop box's consent side: service, receiver and down-link
// subscriber on a real broker (no pipeline: the test plays the camera).
type box struct {
	svc    *consent.Service
	rx     *consent.Receiver
	gate   *consent.Gate
	ledger string
}

func startBox(t *testing.T, b *mqtttest.Broker, hq ed25519.PublicKey) *box {
	t.Helper()
	dir := t.TempDir()
	bx := &box{ledger: filepath.Join(dir, "ledger.jsonl")}
	l, err := consent.OpenLedger(bx.ledger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	key, err := consent.LoadKey(filepath.Join(dir, "box.key"))
	if err != nil {
		t.Fatal(err)
	}
	if bx.svc, err = consent.NewService(consent.Options{Box: "d1", Key: key, Ledger: l, Notice: consent.DefaultNotice(),
		Zones: []consent.Zone{{Camera: "sign", Name: "sign-spot", Rect: zone}}, TokenTTL: time.Minute, MaxDuration: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if bx.rx, err = consent.NewReceiver(consent.ReceiverOptions{Service: bx.svc, HQKey: hq, SeenFile: filepath.Join(dir, "seen.json")}); err != nil {
		t.Fatal(err)
	}
	bx.gate = bx.svc.Gate("sign")
	sub, err := mqttsub.New(mqttsub.Options{Client: b.ClientOptions("veil-d1-consent"), Topic: consent.DownlinkTopic("veil/v1", "s1", "d1"),
		Handle: func(p []byte) { _, _ = bx.rx.Handle(p) }, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the box's subscriber connected", sub.Connected)
	return bx
}

// exempt plays one frame of the sign's camera: track 1 on the spot, 2 elsewhere.
func (bx *box) exempt() []uint64 {
	return bx.gate.Exempt([]track.Covered{{ID: 1, Box: image.Rect(180, 230, 220, 270), Seen: 3}, {ID: 2, Box: image.Rect(580, 230, 620, 270), Seen: 3}})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 20 s for %s", what)
		}
	}
}

func newRelay(t *testing.T, b *mqtttest.Broker, dir string, boxKey ed25519.PublicKey, logs io.Writer) *relay.Relay {
	t.Helper()
	r, err := relay.New(relay.Options{KeyFile: filepath.Join(dir, "hq.key"), Ledger: filepath.Join(dir, "consent.jsonl"),
		Boxes: []relay.Box{{Device: "d1", Store: "s1", Key: boxKey}},
		MQTT:  egress.MQTTOptions{Broker: b.URL(), ClientID: "hq-relay-test", RetryInterval: 100 * time.Millisecond, AckTimeout: 3 * time.Second},
		Log:   slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// phone is a shopper's browser on head office's pages.
type phone struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newPhone(t *testing.T, base string) *phone {
	jar, _ := cookiejar.New(nil)
	return &phone{t: t, base: base, c: &http.Client{Jar: jar}}
}

func (p *phone) do(method, path string, form url.Values) (int, string) {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		form.Set("csrf", p.csrf)
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, p.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "PhoneBrowser/1.0")
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(b); m != nil {
		p.csrf = string(m[1])
	}
	return resp.StatusCode, string(b)
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestRelayFlow: the phone pages at head office send the grant to the box
// over a real broker, the box binds it to the one person on the spot,
// head office's withdrawal redacts them again; the receipt is signed by
// head office; with the broker down the shopper is told and nothing is
// recorded; head office's ledger holds no identifier of the phone.
func TestRelayFlow(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()
	var logs syncBuf
	// The relay's key first, so the box can trust it.
	r := newRelay(t, b, dir, make(ed25519.PublicKey, ed25519.PublicKeySize), &logs)
	hqPub := r.PublicKey()
	r.Close()
	bx := startBox(t, b, hqPub)
	r = newRelay(t, b, dir, bx.svc.PublicKey(), &logs)
	defer r.Close()
	if !hqPub.Equal(r.PublicKey()) {
		t.Fatal("the relay's key changed when it was opened again")
	}
	if fi, err := os.Stat(filepath.Join(dir, "hq.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	defer func() {
		if t.Failed() {
			t.Logf("relay log:\n%s", logs.String())
		}
	}()
	token := func() string {
		tok, _, err := bx.svc.IssueToken("sign")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	waitFor(t, "the relay connected", func() bool {
		code, _ := newPhone(t, srv.URL).do(http.MethodGet, "/c/"+token(), nil)
		return code == 200
	})

	// Broker down: a clear error, nothing recorded, and the code still works afterwards.
	ph := newPhone(t, srv.URL)
	tok := token()
	if code, body := ph.do(http.MethodGet, "/c/"+tok, nil); code != 200 || !strings.Contains(body, `id="yes"`) {
		t.Fatalf("notice page: %d\n%s", code, body)
	}
	b.Stop()
	waitFor(t, "the relay to notice the broker is gone", func() bool {
		code, body := ph.do(http.MethodPost, "/c/"+tok, url.Values{"choice": {"yes"}, "agree": {"on"}})
		if code != http.StatusServiceUnavailable {
			return false
		}
		if !strings.Contains(body, "camera box cannot be reached right now, so nothing was recorded") {
			t.Fatalf("broker down: %d\n%s", code, body)
		}
		return true
	})
	if data, _ := os.ReadFile(filepath.Join(dir, "consent.jsonl")); len(data) != 0 {
		t.Fatalf("an unsent grant was recorded:\n%s", data)
	}
	b.Start()

	// Yes: sent, the page is honest that head office cannot see the binding.
	// A try the broker did not acknowledge in time may still have reached
	// the box, which then used the code up (and the relay withdrew it):
	// like a shopper told to try again, scan the sign anew each time.
	tok = token()
	ph.do(http.MethodGet, "/c/"+tok, nil)
	waitFor(t, "the grant sent after the broker is back", func() bool {
		code, _ := ph.do(http.MethodPost, "/c/"+tok, url.Values{"choice": {"yes"}, "agree": {"on"}})
		if code != 200 {
			tok = token()
			ph.do(http.MethodGet, "/c/"+tok, nil)
		}
		return code == 200
	})
	if code, body := ph.do(http.MethodGet, "/c/consent", nil); code != 200 || !strings.Contains(body, "This page cannot show whether that happened") ||
		strings.Contains(body, `id="confirm"`) || !strings.Contains(body, `id="withdraw"`) {
		t.Fatalf("consent page: %d\n%s", code, body)
	}
	waitFor(t, "the box to bind the relayed grant", func() bool { ex := bx.exempt(); return len(ex) == 1 && ex[0] == 1 })

	code, receipt := ph.do(http.MethodGet, "/c/consent/receipt", nil)
	rc, err := consent.VerifyReceipt([]byte(receipt), r.PublicKey())
	if code != 200 || err != nil || rc.Box != "d1" || rc.Camera != "sign" || rc.NoticeHash != consent.DefaultNotice().Hash() {
		t.Fatalf("receipt %d %+v: %v\n%s", code, rc, err, receipt)
	}

	// A second use of the same code is refused at head office.
	if code, _ := newPhone(t, srv.URL).do(http.MethodGet, "/c/"+tok, nil); code != http.StatusGone {
		t.Fatalf("the used code: %d, want 410", code)
	}

	// Withdraw: the next frame on the box redacts the face again.
	if code, body := ph.do(http.MethodPost, "/c/consent/withdraw", url.Values{}); code != 200 || !strings.Contains(body, consent.DefaultNotice().Texts["en"].Withdrawn) {
		t.Fatalf("withdraw: %d\n%s", code, body)
	}
	waitFor(t, "the box to end the withdrawn consent", func() bool { return len(bx.exempt()) == 0 })

	// Codes of unregistered boxes, expired codes: refused.
	other := consent.Token{Box: "d9", Camera: "sign", Zone: "z", Notice: consent.DefaultNotice().Version, Nonce: consent.NewNonce(), Expires: time.Now().Add(time.Minute).Unix()}
	if code, _ := newPhone(t, srv.URL).do(http.MethodGet, "/c/"+other.Sign(ed25519.NewKeyFromSeed(make([]byte, 32))), nil); code != http.StatusBadRequest {
		t.Fatalf("code of an unregistered box: %d, want 400", code)
	}

	// Head office's ledger: grant and withdraw, with the box, verifying, and
	// nothing about the phone.
	hqLedger := filepath.Join(dir, "consent.jsonl")
	if n, err := consent.VerifyLedger(hqLedger); err != nil || n != 2 {
		t.Fatalf("head office's ledger: %d entries, %v; want grant, withdraw", n, err)
	}
	data, _ := os.ReadFile(hqLedger)
	for _, want := range []string{`"type":"grant"`, `"type":"withdraw"`, `"box":"d1"`, `"relayed":true`, `"camera":"sign"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("head office's ledger lacks %s:\n%s", want, data)
		}
	}
	for _, banned := range []string{"127.0.0.1", "PhoneBrowser", "veil_consent", tok} {
		if strings.Contains(string(data), banned) {
			t.Errorf("head office's ledger holds %q", banned)
		}
	}
	// The box's ledger: the relayed grant under head office's consent id.
	boxData, _ := os.ReadFile(bx.ledger)
	if !strings.Contains(string(boxData), `"consent_id":"`+rc.ConsentID+`"`) || !strings.Contains(string(boxData), `"relayed":true`) {
		t.Errorf("box ledger:\n%s", boxData)
	}
	if st := bx.rx.Stats(); st.Accepted[consent.KindGrant] != 1 || st.Accepted[consent.KindWithdraw] != 1 {
		t.Errorf("box receiver stats %+v", st)
	}
}

// TestRelayRestart: head office keeps what lets a phone page withdraw
// (grants.go) across restarts: after veil-hq stops and starts again, the
// same phone page shows the consent, withdraws it and the box ends it; the
// grants file holds no identifier of the phone, not even the secret in
// its cookie; a grant lost from the file is recorded as ended; a damaged
// file stops the relay with an error naming it; retention purges ended
// grants from the file with the ledger.
func TestRelayRestart(t *testing.T) {
	tests := []struct {
		name string
		// between runs between the two relays (the first closed); it
		// returns what the phone's withdrawal must answer and the ledger's
		// entry types at the end.
		between func(t *testing.T, dir string) (code int, ledger string)
		ended   bool // the box's consent ended by the end
	}{
		{"withdrawn from the same page", func(*testing.T, string) (int, string) {
			return http.StatusOK, "grant,withdraw"
		}, true},
		{"grants file lost", func(t *testing.T, dir string) (int, string) {
			if err := os.Remove(relay.GrantsFile(filepath.Join(dir, "consent.jsonl"))); err != nil {
				t.Fatal(err)
			}
			return http.StatusForbidden, "grant,expire"
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{})
			dir := t.TempDir()
			var logs syncBuf
			defer func() {
				if t.Failed() {
					t.Logf("relay log:\n%s", logs.String())
				}
			}()
			r := newRelay(t, b, dir, make(ed25519.PublicKey, ed25519.PublicKeySize), &logs)
			hqPub := r.PublicKey()
			r.Close()
			bx := startBox(t, b, hqPub)
			r = newRelay(t, b, dir, bx.svc.PublicKey(), &logs)
			// Every run of the relay behind the same address, as a
			// restarted veil-hq is.
			var cur sync.Mutex
			handler := r.Handler()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				cur.Lock()
				h := handler
				cur.Unlock()
				h.ServeHTTP(w, req)
			}))
			defer srv.Close()

			tok, _, err := bx.svc.IssueToken("sign")
			if err != nil {
				t.Fatal(err)
			}
			ph := newPhone(t, srv.URL)
			ph.do(http.MethodGet, "/c/"+tok, nil)
			waitFor(t, "the grant sent", func() bool {
				code, _ := ph.do(http.MethodPost, "/c/"+tok, url.Values{"choice": {"yes"}, "agree": {"on"}})
				return code == http.StatusOK
			})
			waitFor(t, "the box to bind the relayed grant", func() bool { ex := bx.exempt(); return len(ex) == 1 && ex[0] == 1 })

			// What the file holds: the grant, nothing of the phone.
			grants := relay.GrantsFile(filepath.Join(dir, "consent.jsonl"))
			data, err := os.ReadFile(grants)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(srv.URL + "/c/")
			var cookie string
			for _, c := range ph.c.Jar.Cookies(u) {
				if c.Name == "veil_consent" {
					cookie = c.Value
				}
			}
			id, secret, _ := strings.Cut(cookie, ".")
			if id == "" || !strings.Contains(string(data), id) {
				t.Fatalf("the grants file lacks the consent %q:\n%s", id, data)
			}
			for _, banned := range []string{"127.0.0.1", "PhoneBrowser", "veil_consent", secret, tok} {
				if strings.Contains(string(data), banned) {
					t.Errorf("the grants file holds %q:\n%s", banned, data)
				}
			}
			if fi, err := os.Stat(grants); err != nil || fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("grants file mode %v (%v): want no access for group or others", fi.Mode(), err)
			}

			r.Close()
			code, ledger := tc.between(t, dir)
			r = newRelay(t, b, dir, bx.svc.PublicKey(), &logs)
			defer r.Close()
			cur.Lock()
			handler = r.Handler()
			cur.Unlock()

			if code == http.StatusOK {
				if c, body := ph.do(http.MethodGet, "/c/consent", nil); c != http.StatusOK || !strings.Contains(body, `id="withdraw"`) {
					t.Fatalf("the phone's page after the restart: %d\n%s", c, body)
				}
				c, receipt := ph.do(http.MethodGet, "/c/consent/receipt", nil)
				if rc, err := consent.VerifyReceipt([]byte(receipt), r.PublicKey()); c != http.StatusOK || err != nil || rc.ConsentID != id {
					t.Fatalf("receipt after the restart: %d %v\n%s", c, err, receipt)
				}
			}
			waitFor(t, "the relay connected again", func() bool {
				c, body := ph.do(http.MethodPost, "/c/consent/withdraw", url.Values{})
				if c == http.StatusServiceUnavailable {
					return false
				}
				if c != code || code == http.StatusOK && !strings.Contains(body, consent.DefaultNotice().Texts["en"].Withdrawn) {
					t.Fatalf("withdraw after the restart: %d, want %d\n%s", c, code, body)
				}
				return true
			})
			if tc.ended {
				waitFor(t, "the box to end the withdrawn consent", func() bool { return len(bx.exempt()) == 0 })
			} else if len(bx.exempt()) != 1 {
				t.Error("the box ended a consent head office could not withdraw")
			}
			var types []string
			data, _ = os.ReadFile(filepath.Join(dir, "consent.jsonl"))
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var e consent.Entry
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatal(err)
				}
				types = append(types, string(e.Type))
			}
			if got := strings.Join(types, ","); got != ledger {
				t.Errorf("head office's ledger %s, want %s", got, ledger)
			}

			// Retention: an ended grant leaves the file with the ledger.
			if _, err := r.Purge(time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(grants); strings.Contains(string(data), id) {
				t.Errorf("the grants file keeps an ended grant after the purge:\n%s", data)
			}
		})
	}
}

// TestRelayDamagedGrantsFile: a grants file that does not parse stops the
// relay with an error naming it (phones could not withdraw otherwise).
func TestRelayDamagedGrantsFile(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "consent.jsonl")
	for _, content := range []string{"{", `{"v":1,"grants":[{"id":"x"}]}`, `{"v":9,"grants":[]}`, `{"v":1,"grants":[],"phone":"x"}`} {
		if err := os.WriteFile(relay.GrantsFile(ledger), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := relay.New(relay.Options{KeyFile: filepath.Join(dir, "hq.key"), Ledger: ledger, MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1"}})
		if err == nil || !strings.Contains(err.Error(), relay.GrantsFile(ledger)) {
			t.Errorf("grants file %q: error %v, want one naming the file", content, err)
		}
	}
}

// TestRelayUncertainGrantWithdrawn: a grant the broker does not acknowledge
// in time may still reach the box, while the shopper is told nothing was
// recorded and gets no way to withdraw it: the relay withdraws it at once,
// so the box never keeps a consent head office does not know of.
func TestRelayUncertainGrantWithdrawn(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()
	var logs syncBuf
	r := newRelay(t, b, dir, make(ed25519.PublicKey, ed25519.PublicKeySize), &logs)
	hqPub := r.PublicKey()
	r.Close()
	bx := startBox(t, b, hqPub)
	r, err := relay.New(relay.Options{KeyFile: filepath.Join(dir, "hq.key"), Ledger: filepath.Join(dir, "consent.jsonl"),
		Boxes: []relay.Box{{Device: "d1", Store: "s1", Key: bx.svc.PublicKey()}},
		// No PUBACK can arrive this fast: every send is uncertain.
		MQTT: egress.MQTTOptions{Broker: b.URL(), ClientID: "hq-relay-test", RetryInterval: 100 * time.Millisecond, AckTimeout: time.Nanosecond},
		Log:  slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	defer func() {
		if t.Failed() {
			t.Logf("relay log:\n%s", logs.String())
		}
	}()
	ph := newPhone(t, srv.URL)
	// The relay may not have connected yet; a grant it could not even send is
	// refused the same way but never reaches the box, so the shopper scans a
	// fresh code until one was sent without an acknowledgement.
	const unsent = "not sent: not connected"
	waitFor(t, "a grant sent but not acknowledged", func() bool {
		tok, _, err := bx.svc.IssueToken("sign")
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := ph.do(http.MethodGet, "/c/"+tok, nil); code != 200 {
			return false
		}
		before := strings.Count(logs.String(), unsent)
		code, body := ph.do(http.MethodPost, "/c/"+tok, url.Values{"choice": {"yes"}, "agree": {"on"}})
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "nothing was recorded") {
			t.Fatalf("an unacknowledged grant: %d\n%s", code, body)
		}
		return strings.Count(logs.String(), unsent) == before
	})
	waitFor(t, "the box to take the late grant and its withdrawal", func() bool {
		bx.exempt()
		st := bx.rx.Stats()
		return st.Accepted[consent.KindGrant] == 1 && st.Accepted[consent.KindWithdraw] == 1
	})
	if ex := bx.exempt(); len(ex) != 0 {
		t.Errorf("the box still exempts %v after the withdrawal", ex)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "consent.jsonl")); len(data) != 0 {
		t.Errorf("head office recorded a grant it told the shopper it did not record:\n%s", data)
	}
}
