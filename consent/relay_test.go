package consent

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// relayEnv is a box (env) with a Receiver trusting head office's key.
type relayEnv struct {
	*env
	hq   ed25519.PrivateKey
	seen string
	rx   *Receiver
}

func newRelayEnv(t *testing.T) *relayEnv {
	e := &relayEnv{env: newEnv(t, 1000), hq: testKey(t, 9), seen: filepath.Join(t.TempDir(), "relay", "seen.json")}
	e.rx = e.receiver()
	return e
}

func (e *relayEnv) receiver() *Receiver {
	e.t.Helper()
	rx, err := NewReceiver(ReceiverOptions{Service: e.svc, HQKey: e.hq.Public().(ed25519.PublicKey), SeenFile: e.seen,
		Now: func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }})
	if err != nil {
		e.t.Fatal(err)
	}
	return rx
}

// msg signs a down-link message issued now (plus skew) with key.
func (e *relayEnv) msg(key ed25519.PrivateKey, kind, consentID, tok string, skew time.Duration) []byte {
	e.t.Helper()
	e.mu.Lock()
	issued := e.now.Add(skew).Unix()
	e.mu.Unlock()
	d := Downlink{V: 1, ID: NewNonce(), Kind: kind, Box: "box-1", ConsentID: consentID, Issued: issued}
	if kind == KindGrant {
		d.Token, d.Lang = tok, "en"
	}
	b, err := d.Sign(key)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func reason(err error) string {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	if err == nil {
		return ""
	}
	return "not a RefusedError: " + err.Error()
}

// TestReceiverRefuses: forged (another key, a field changed, another box),
// replayed (twice, and again after the receiver is reopened), stale and
// future messages are refused, each with its reason, and counted; none
// records a grant.
func TestReceiverRefuses(t *testing.T) {
	e := newRelayEnv(t)
	id, tok := NewNonce(), e.token()
	good := e.msg(e.hq, KindGrant, id, tok, 0)
	if _, err := e.rx.Handle(good); err != nil {
		t.Fatalf("a good grant: %v", err)
	}
	changed := []byte(strings.Replace(string(good), `"lang":"en"`, `"lang":"zh-CN"`, 1))
	otherBox := func() []byte {
		d := Downlink{V: 1, ID: NewNonce(), Kind: KindGrant, Box: "box-2", ConsentID: NewNonce(), Token: e.token(), Lang: "en", Issued: e.now.Unix()}
		b, _ := d.Sign(e.hq)
		return b
	}()
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"signed by another key", e.msg(testKey(t, 10), KindGrant, NewNonce(), e.token(), 0), RefusedSignature},
		{"field changed after signing", changed, RefusedSignature},
		{"for another box", otherBox, RefusedOtherBox},
		{"replayed", good, RefusedReplay},
		{"stale", e.msg(e.hq, KindGrant, NewNonce(), e.token(), -DownlinkMaxAge-time.Second), RefusedStale},
		{"from the future", e.msg(e.hq, KindGrant, NewNonce(), e.token(), DownlinkMaxAhead+time.Second), RefusedFuture},
		{"malformed", []byte(`{"v":1,"kind":"grant"}`), RefusedMalformed},
		{"token used", e.msg(e.hq, KindGrant, NewNonce(), tok, 0), RefusedToken},
		{"token of another box", e.msg(e.hq, KindGrant, NewNonce(), Token{Box: "box-2", Camera: "sign", Zone: "spot", Notice: DefaultNotice().Version, Nonce: NewNonce(), Expires: e.now.Add(time.Minute).Unix()}.Sign(testKey(t, 7)), 0), RefusedToken},
		{"same consent id", e.msg(e.hq, KindGrant, id, e.token(), 0), RefusedConsent},
		{"withdraw unknown", e.msg(e.hq, KindWithdraw, NewNonce(), "", 0), RefusedConsent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.rx.Handle(tc.msg); reason(err) != tc.want {
				t.Fatalf("refused for %q (%v), want %q", reason(err), err, tc.want)
			}
		})
	}
	// After a restart: the seen ids are on disk.
	if _, err := e.receiver().Handle(good); reason(err) != RefusedReplay {
		t.Fatalf("replay after reopening: %v", err)
	}
	// Once the window has passed the id is forgotten, and the message is stale.
	e.advance(DownlinkMaxAge + DownlinkMaxAhead + 2*time.Second)
	if _, err := e.receiver().Handle(good); reason(err) != RefusedStale {
		t.Fatalf("replay after the window: %v", err)
	}
	st := e.rx.Stats()
	if st.Accepted[KindGrant] != 1 || st.Refused[RefusedSignature] != 2 || st.Refused[RefusedReplay] != 1 || st.Refused[RefusedToken] != 2 {
		t.Errorf("stats %+v", st)
	}
	if got := types(e.entries()); got != "grant" {
		t.Fatalf("ledger %s, want the one accepted grant", got)
	}
	if !e.entries()[0].Relayed || e.entries()[0].ConsentID != id {
		t.Errorf("ledger grant %+v: want relayed, under head office's consent id", e.entries()[0])
	}
}

// TestRelayedGrantBinding: a relayed grant binds on the first update with
// exactly one face on the spot within RelayBindWindow, not while nobody or
// two are there; withdrawing it redacts the face at once; one that finds
// no single person in the window ends with a ledger reason.
func TestRelayedGrantBinding(t *testing.T) {
	tests := []struct {
		name string
		run  func(e *relayEnv) string // returns the ledger's types
	}{
		{"bound within the window, then withdrawn", func(e *relayEnv) string {
			id := NewNonce()
			if _, err := e.rx.Handle(e.msg(e.hq, KindGrant, id, e.token(), 0)); err != nil {
				e.t.Fatal(err)
			}
			if ex := e.tracks(face(2, 600, 250)); len(ex) != 0 { // nobody on the spot
				e.t.Fatalf("exempt %v with nobody on the spot", ex)
			}
			e.advance(10 * time.Second)
			if ex := e.tracks(face(1, 200, 250), face(3, 210, 260)); len(ex) != 0 { // two on the spot
				e.t.Fatalf("exempt %v with two on the spot", ex)
			}
			e.advance(10 * time.Second)
			if ex := e.tracks(face(1, 200, 250), face(2, 600, 250)); len(ex) != 1 || ex[0] != 1 {
				e.t.Fatalf("exempt %v, want [1]", ex)
			}
			if ex := e.tracks(face(1, 205, 250), face(2, 600, 250)); len(ex) != 1 || ex[0] != 1 {
				e.t.Fatalf("exempt %v after binding, want [1]", ex)
			}
			if _, err := e.rx.Handle(e.msg(e.hq, KindWithdraw, id, "", 0)); err != nil {
				e.t.Fatal(err)
			}
			if ex := e.tracks(face(1, 205, 250)); len(ex) != 0 {
				e.t.Fatalf("exempt %v on the next frame after withdrawal", ex)
			}
			return "grant,bind,unbind,withdraw"
		}},
		{"nobody alone in the window", func(e *relayEnv) string {
			if _, err := e.rx.Handle(e.msg(e.hq, KindGrant, NewNonce(), e.token(), 0)); err != nil {
				e.t.Fatal(err)
			}
			for range 4 {
				e.tracks(face(1, 200, 250), face(3, 210, 260))
				e.advance(10 * time.Second)
			}
			if ex := e.tracks(face(1, 200, 250)); len(ex) != 0 {
				e.t.Fatalf("exempt %v after the bind window", ex)
			}
			es := e.entries()
			if last := es[len(es)-1]; !strings.HasPrefix(last.Reason, "not bound") {
				e.t.Errorf("ended with reason %q", last.Reason)
			}
			return "grant,expire"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newRelayEnv(t)
			want := tc.run(e)
			if got := types(e.entries()); got != want {
				t.Fatalf("ledger %s, want %s", got, want)
			}
		})
	}
}
