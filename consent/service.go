package consent

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"time"

	"github.com/veil-edge/veil/track"
)

// Zone is a signage camera's opt-in spot: a region of its picture in front
// of the sign, where a shopper stands to bind their consent.
type Zone struct {
	Camera string
	Name   string
	Rect   image.Rectangle
}

// Options configure a Service.
type Options struct {
	Box         string             // site.device: tokens name the box that issued them
	Key         ed25519.PrivateKey // signs tokens and receipts
	Ledger      *Ledger
	Notice      Notice
	Zones       []Zone        // one per signage camera
	TokenTTL    time.Duration // how long a QR code's token is valid
	MaxDuration time.Duration // the longest a consent lasts
	Log         *slog.Logger
	Now         func() time.Time // nil: time.Now
}

// Errors of the consent flow, worded for the shopper's page.
var (
	ErrNoSuchConsent = errors.New("this consent is not known on this box (or its secret is wrong)")
	ErrEnded         = errors.New("this consent has ended")
	ErrNoneInZone    = errors.New("nobody is on the marked spot")
	ErrSeveralInZone = errors.New("more than one person is on the marked spot")
	ErrCameraDown    = errors.New("the sign's camera is not running")
	ErrNotSignage    = errors.New("this camera has no opt-in zone")
	ErrConsentExists = errors.New("a consent with this id is already known on this box")
	// ErrUnavailable: head office could not reach the shop's camera box.
	ErrUnavailable = errors.New("the shop's camera box cannot be reached right now, so nothing was recorded; please try again in a moment")
)

// RelayBindWindow is how long a relayed grant has to be bound: the box
// tries on every pipeline update of the signage camera (Gate.Exempt) until
// it finds exactly one face track on the opt-in zone, and ends the grant
// when the window passes without one.
const RelayBindWindow = 30 * time.Second

// Grant is one shopper's consent on this box.
type Grant struct {
	ID      string    // random; in the ledger and the receipt
	Secret  string    // the phone keeps it; needed to confirm, withdraw or get the receipt
	Camera  string    // the signage camera
	Zone    string    // its opt-in zone
	Lang    string    // the language the notice was read in
	Notice  string    // notice version agreed to
	Granted time.Time //
	Expires time.Time // at the latest
	Bound   bool      // bound to a track now
	Ended   string    // why it ended ("" while active)
	Relayed bool      // given on head office's pages and relayed to the box
	// Suspended: bound, but redacted for now: another face is close (see
	// follow.go).
	Suspended bool
	// Unbound says why the binding last ended while the grant stayed
	// active (another face came close); the shopper may confirm again.
	Unbound string
	track   uint64
	follow  *follow   // while bound
	bindBy  time.Time // a relayed grant not yet bound: keep trying until then
}

// Service is the box's consent state: tokens issued and used, grants and
// the tracks they are bound to. Its methods are safe for concurrent use.
type Service struct {
	o   Options
	pub ed25519.PublicKey
	log *slog.Logger

	mu     sync.Mutex
	notice Notice
	used   map[string]time.Time // token nonce -> its expiry (kept until then)
	grants map[string]*Grant
	cams   map[string]*camState
}

// camState is what the signage camera's pipeline last reported.
type camState struct {
	zone  Zone
	faces []track.Covered
	at    time.Time
}

// snapshotMaxAge: a confirm needs the camera's tracks from this recently.
const snapshotMaxAge = 2 * time.Second

// NewService checks o and returns a Service.
func NewService(o Options) (*Service, error) {
	if o.Key == nil || o.Ledger == nil || o.Box == "" || o.TokenTTL <= 0 || o.MaxDuration <= 0 {
		return nil, fmt.Errorf("consent: box, key, ledger, token TTL and maximum duration are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, pub: o.Key.Public().(ed25519.PublicKey), log: o.Log, notice: o.Notice,
		used: map[string]time.Time{}, grants: map[string]*Grant{}, cams: map[string]*camState{}}
	for _, z := range o.Zones {
		if z.Rect.Empty() {
			return nil, fmt.Errorf("consent: camera %s: empty opt-in zone", z.Camera)
		}
		s.cams[z.Camera] = &camState{zone: z}
	}
	// Consents still running when veil last stopped ended with it: their
	// tracks are gone. The ledger says so.
	active, err := o.Ledger.Active()
	if err != nil {
		return nil, err
	}
	for _, id := range active {
		if _, err := o.Ledger.Append(Entry{Time: o.Now().UTC(), Type: EventExpire, ConsentID: id, Reason: "veil restarted"}); err != nil {
			return nil, fmt.Errorf("consent ledger: %w", err)
		}
		s.log.Info("consent ended: veil restarted", "consent", id)
	}
	return s, nil
}

// Notice is the notice in force.
func (s *Service) Notice() Notice {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notice
}

// MaxDuration is the longest a consent lasts.
func (s *Service) MaxDuration() time.Duration { return s.o.MaxDuration }

// SetNotice puts a new notice version in force. Tokens shown with the old
// one are refused from now on, and every consent given under it ends: the
// shopper must agree to the new text.
func (s *Service) SetNotice(n Notice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.Version == s.notice.Version {
		return
	}
	s.notice = n
	for _, g := range s.grants {
		if g.Ended == "" {
			s.end(g, EventExpire, "notice changed")
		}
	}
}

// IssueToken signs a new token for a signage camera's QR code.
func (s *Service) IssueToken(camera string) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.cams[camera]
	if !ok {
		return "", time.Time{}, ErrNotSignage
	}
	now := s.o.Now()
	for n, exp := range s.used {
		if now.After(exp) {
			delete(s.used, n)
		}
	}
	exp := now.Add(s.o.TokenTTL).Truncate(time.Second)
	t := Token{Box: s.o.Box, Camera: camera, Zone: cs.zone.Name, Notice: s.notice.Version, Nonce: NewNonce(), Expires: exp.Unix()}
	return t.Sign(s.o.Key), exp, nil
}

// Check verifies a token for showing the notice: signature, box, expiry,
// notice version and that it was not used. It does not use it up.
func (s *Service) Check(tok string) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.check(tok)
}

func (s *Service) check(tok string) (Token, error) {
	t, err := ParseToken(tok, s.pub)
	if err != nil {
		return Token{}, err
	}
	switch {
	case t.Box != s.o.Box:
		return Token{}, ErrTokenOtherBox
	case !s.o.Now().Before(t.ExpiresAt()):
		return Token{}, ErrTokenExpired
	case t.Notice != s.notice.Version:
		return Token{}, ErrNoticeChanged
	}
	if _, used := s.used[t.Nonce]; used {
		return Token{}, ErrTokenUsed
	}
	if _, ok := s.cams[t.Camera]; !ok {
		return Token{}, ErrNotSignage
	}
	return t, nil
}

// Decide uses up a token with the shopper's answer. No records nothing and
// returns nil; yes records a grant (not yet bound to anyone) and returns it.
func (s *Service) Decide(tok, lang string, yes bool) (*Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.check(tok)
	if err != nil {
		return nil, err
	}
	s.used[t.Nonce] = t.ExpiresAt()
	if !yes {
		return nil, nil
	}
	g, err := s.record(t, NewNonce(), lang, false)
	if err != nil {
		return nil, err
	}
	s.log.Info("consent granted", "consent", g.ID, "camera", g.Camera, "lang", g.Lang, "notice", g.Notice)
	cp := *g
	return &cp, nil
}

// record writes a grant of token t (checked and used up) under id to the
// ledger and keeps it. s.mu is held.
func (s *Service) record(t Token, id, lang string, relayed bool) (*Grant, error) {
	if _, ok := s.notice.Texts[lang]; !ok {
		lang = "en"
	}
	now := s.o.Now().UTC()
	g := &Grant{ID: id, Secret: NewNonce() + NewNonce(), Camera: t.Camera, Zone: t.Zone, Lang: lang,
		Notice: s.notice.Version, Granted: now, Expires: now.Add(s.o.MaxDuration), Relayed: relayed}
	if relayed {
		g.bindBy = now.Add(RelayBindWindow)
	}
	if _, err := s.o.Ledger.Append(g.GrantEntry(s.notice, "")); err != nil {
		return nil, fmt.Errorf("consent ledger: %w", err)
	}
	s.grants[g.ID] = g
	return g, nil
}

// GrantRelayed records a grant given on head office's pages and relayed to
// the box (see Receiver), under head office's consent id. tok, the QR
// code's token, must pass the same checks as for Decide (this box's
// signature, not expired, the notice in force, unused, a signage camera),
// and is used up. There is no phone to tap Confirm on the box, so the grant
// is bound to the one face track on the camera's opt-in zone on the next
// pipeline update that has exactly one there, within RelayBindWindow;
// otherwise it ends (ledger reason "not bound: ..."). The ledger's grant
// entry is marked relayed.
func (s *Service) GrantRelayed(consentID, tok, lang string) (Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	t, err := s.check(tok)
	if err != nil {
		return Grant{}, err
	}
	if _, dup := s.grants[consentID]; dup || consentID == "" {
		return Grant{}, ErrConsentExists
	}
	s.used[t.Nonce] = t.ExpiresAt()
	g, err := s.record(t, consentID, lang, true)
	if err != nil {
		return Grant{}, err
	}
	s.log.Info("relayed consent granted; binding on the next update with one person on the spot", "consent", g.ID, "camera", g.Camera, "lang", g.Lang, "notice", g.Notice, "bind_window", RelayBindWindow)
	_ = s.bind(g) // one person there already: bound now; otherwise Gate.Exempt keeps trying
	return *g, nil
}

// WithdrawRelayed ends a relayed grant by its consent id, at once: its face
// is redacted from the next frame. Withdrawing an ended grant again does
// nothing; an unknown id is ErrNoSuchConsent.
func (s *Service) WithdrawRelayed(consentID string) (Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	g, ok := s.grants[consentID]
	if !ok || !g.Relayed {
		return Grant{}, ErrNoSuchConsent
	}
	if g.Ended == "" {
		s.end(g, EventWithdraw, "withdrawn")
	}
	return *g, nil
}

// bindRelayed tries to bind the camera's relayed grants that are not yet
// bound, and ends those whose bind window has passed. s.mu is held.
func (s *Service) bindRelayed(camera string) {
	now := s.o.Now()
	for _, g := range s.grants {
		if !g.Relayed || g.Bound || g.Ended != "" || g.Camera != camera {
			continue
		}
		err := s.bind(g)
		switch {
		case err == nil:
		case errors.Is(err, ErrNoneInZone), errors.Is(err, ErrSeveralInZone), errors.Is(err, ErrCameraDown):
			if !now.Before(g.bindBy) {
				s.end(g, EventExpire, fmt.Sprintf("not bound: not exactly one person on the marked spot within %s", RelayBindWindow))
			}
		default:
			s.log.Error("binding a relayed consent", "consent", g.ID, "err", err)
		}
	}
}

// grant finds an active or ended grant by id and secret.
func (s *Service) grant(id, secret string) (*Grant, error) {
	g, ok := s.grants[id]
	if !ok || subtle.ConstantTimeCompare([]byte(g.Secret), []byte(secret)) != 1 {
		return nil, ErrNoSuchConsent
	}
	return g, nil
}

// withGrant runs op on the grant of id and secret, after ending expired
// grants, and returns a copy of it.
func (s *Service) withGrant(id, secret string, op func(g *Grant) error) (Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	g, err := s.grant(id, secret)
	if err != nil {
		return Grant{}, err
	}
	err = op(g)
	return *g, err
}

// Status returns a copy of the grant.
func (s *Service) Status(id, secret string) (Grant, error) {
	return s.withGrant(id, secret, func(*Grant) error { return nil })
}

// Confirm binds the grant to the one face track inside its camera's opt-in
// zone now (detected on two keyframes at least). None or several there is
// an error, and nothing is bound.
func (s *Service) Confirm(id, secret string) (Grant, error) {
	return s.withGrant(id, secret, s.bind)
}

// bind binds g to the one track in its zone, once it has been detected on
// two keyframes. s.mu is held.
func (s *Service) bind(g *Grant) error {
	if g.Ended != "" {
		return ErrEnded
	}
	if g.Bound {
		return nil
	}
	cs := s.cams[g.Camera]
	if cs.at.IsZero() || s.o.Now().Sub(cs.at) > snapshotMaxAge {
		return ErrCameraDown
	}
	var in []track.Covered
	oneOff := false
	for _, f := range cs.faces {
		c := image.Pt((f.Box.Min.X+f.Box.Max.X)/2, (f.Box.Min.Y+f.Box.Max.Y)/2)
		if c.In(cs.zone.Rect) {
			in = append(in, f)
			oneOff = oneOff || f.Seen < 2
		}
	}
	switch {
	case len(in) == 1 && oneOff:
		// Detected on one keyframe only: most such are false, and the
		// tracker holds them briefly. The next keyframe tells.
		return ErrNoneInZone
	case len(in) == 0:
		return ErrNoneInZone
	case len(in) > 1:
		return ErrSeveralInZone
	}
	for _, o := range s.grants {
		if o.Bound && o.Camera == g.Camera && o.track == in[0].ID {
			return ErrSeveralInZone // that track is someone else's consent already
		}
	}
	if _, err := s.o.Ledger.Append(Entry{Time: s.o.Now().UTC(), Type: EventBind, ConsentID: g.ID, Camera: g.Camera, Zone: g.Zone}); err != nil {
		return fmt.Errorf("consent ledger: %w", err)
	}
	g.Bound, g.track, g.follow, g.Suspended, g.Unbound = true, in[0].ID, newFollow(in[0]), false, ""
	s.log.Info("consent bound to a track", "consent", g.ID, "camera", g.Camera, "track", g.track)
	return nil
}

// Withdraw ends the grant now; its face is redacted from the next frame.
func (s *Service) Withdraw(id, secret string) (Grant, error) {
	return s.withGrant(id, secret, func(g *Grant) error {
		if g.Ended == "" {
			s.end(g, EventWithdraw, "withdrawn")
		}
		return nil
	})
}

// end unbinds and ends a grant, writing both to the ledger. s.mu is held.
func (s *Service) end(g *Grant, ev EventType, reason string) {
	now := s.o.Now().UTC()
	if g.Bound {
		if _, err := s.o.Ledger.Append(Entry{Time: now, Type: EventUnbind, ConsentID: g.ID, Camera: g.Camera, Zone: g.Zone, Reason: reason}); err != nil {
			s.log.Error("consent ledger", "err", err)
		}
	}
	g.Bound, g.Ended, g.follow, g.Suspended = false, reason, nil, false
	if _, err := s.o.Ledger.Append(Entry{Time: now, Type: ev, ConsentID: g.ID, Camera: g.Camera, Zone: g.Zone, Reason: reason}); err != nil {
		s.log.Error("consent ledger", "err", err)
	}
	s.log.Info("consent ended", "consent", g.ID, "reason", reason)
}

// unbind ends g's binding for reason (see follow.go). A grant confirmed on
// this box's pages stays active: the shopper may confirm again on the spot.
// A relayed grant, which has no phone to confirm on the box, ends. s.mu is
// held.
func (s *Service) unbind(g *Grant, reason string) {
	if g.Relayed {
		s.end(g, EventExpire, reason)
		return
	}
	if _, err := s.o.Ledger.Append(Entry{Time: s.o.Now().UTC(), Type: EventUnbind, ConsentID: g.ID, Camera: g.Camera, Zone: g.Zone, Reason: reason}); err != nil {
		s.log.Error("consent ledger", "err", err)
	}
	g.Bound, g.follow, g.Suspended, g.Unbound = false, nil, false, reason
	s.log.Info("consent unbound: confirm again to be shown", "consent", g.ID, "camera", g.Camera, "reason", reason)
}

// expire ends grants past their expiry, and forgets ended grants one
// maximum duration after their expiry (until then the phone can still see
// that its consent ended and get its receipt). s.mu is held.
func (s *Service) expire() {
	now := s.o.Now()
	for id, g := range s.grants {
		if g.Ended == "" && !now.Before(g.Expires) {
			s.end(g, EventExpire, "expired")
		}
		if g.Ended != "" && now.After(g.Expires.Add(s.o.MaxDuration)) {
			delete(s.grants, id)
		}
	}
}

// Receipt is the shopper's signed record of their consent: JSON with the
// ids, notice version and hash, language, purposes and times, and the box's
// Ed25519 signature over the receipt without it.
func (s *Service) Receipt(id, secret string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.grant(id, secret)
	if err != nil {
		return nil, err
	}
	return g.SignReceipt(s.o.Box, s.notice, s.o.Key)
}

// SignReceipt is the shopper's receipt of g on box under notice n, signed
// with key: JSON, the Ed25519 signature over the receipt without it.
func (g Grant) SignReceipt(box string, n Notice, key ed25519.PrivateKey) ([]byte, error) {
	r := Receipt{ConsentID: g.ID, Box: box, Camera: g.Camera, Zone: g.Zone, NoticeVersion: g.Notice,
		NoticeHash: n.Hash(), Lang: g.Lang, Purposes: n.Purposes, Granted: g.Granted, Expires: g.Expires}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	r.Signature = ed25519.Sign(key, body)
	return json.MarshalIndent(r, "", "  ")
}

// GrantEntry is the ledger entry that records g, given under notice n, on
// box ("" on the box's own ledger).
func (g Grant) GrantEntry(n Notice, box string) Entry {
	exp := g.Expires
	return Entry{Time: g.Granted, Type: EventGrant, ConsentID: g.ID, NoticeVersion: n.Version, NoticeHash: n.Hash(),
		Lang: g.Lang, Purposes: n.Purposes, Camera: g.Camera, Zone: g.Zone, Expires: &exp, Box: box, Relayed: g.Relayed}
}

// Receipt is what the shopper downloads.
type Receipt struct {
	ConsentID     string    `json:"consent_id"`
	Box           string    `json:"box"`
	Camera        string    `json:"camera"`
	Zone          string    `json:"zone"`
	NoticeVersion string    `json:"notice_version"`
	NoticeHash    string    `json:"notice_hash"`
	Lang          string    `json:"lang"`
	Purposes      []string  `json:"purposes"`
	Granted       time.Time `json:"granted"`
	Expires       time.Time `json:"expires"`
	Signature     []byte    `json:"signature,omitempty"` // Ed25519 over this JSON without signature
}

// VerifyReceipt checks a receipt's signature with the box's public key.
func VerifyReceipt(data []byte, pub ed25519.PublicKey) (Receipt, error) {
	var r Receipt
	if err := json.Unmarshal(data, &r); err != nil {
		return Receipt{}, fmt.Errorf("receipt: %w", err)
	}
	sig := r.Signature
	r.Signature = nil
	body, _ := json.Marshal(r)
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, body, sig) {
		return Receipt{}, errors.New("receipt: signature does not match")
	}
	r.Signature = sig
	return r, nil
}

// PublicKey is the box's key that verifies its tokens and receipts.
func (s *Service) PublicKey() ed25519.PublicKey { return s.pub }

// Gate is the pipeline hook of one camera (pipeline.Consent): a camera
// without an opt-in zone gets nil, and so redacts every face.
func (s *Service) Gate(camera string) *Gate {
	if _, ok := s.cams[camera]; !ok {
		return nil
	}
	return &Gate{s: s, camera: camera}
}

// Gate tells one camera's pipeline which tracked faces may be shown.
type Gate struct {
	s      *Service
	camera string
}

// Exempt records the camera's tracks (for Confirm), ends consents whose
// track is gone or whose time is up, follows each bound track by the rules
// in follow.go (suspended while another face is near, unbound when which
// face is which can no longer be told), and returns the tracks that may be
// shown.
func (g *Gate) Exempt(faces []track.Covered) []uint64 {
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.cams[g.camera]
	cs.faces = append(cs.faces[:0], faces...)
	cs.at = s.o.Now()
	s.expire()
	s.bindRelayed(g.camera)
	var out []uint64
	for _, gr := range s.grants {
		if !gr.Bound || gr.Camera != g.camera {
			continue
		}
		f, alive := find(faces, gr.track)
		if !alive {
			s.end(gr, EventExpire, "track ended")
			continue
		}
		exempt, ended := gr.follow.step(f, faces)
		if ended != "" {
			s.unbind(gr, ended)
			continue
		}
		if gr.Suspended != !exempt {
			gr.Suspended = !exempt
			s.log.Debug("consent exemption", "consent", gr.ID, "track", gr.track, "suspended", gr.Suspended)
		}
		if exempt {
			out = append(out, gr.track)
		}
	}
	return out
}
