package consent

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"rsc.io/qr"
)

// The pages a shopper and the sign see, all served without a login (they
// carry no operator data). The box serves all of them (Service.Handler);
// head office's consent relay serves the phone pages (/c/...) only, with
// PhoneHandler and its own Backend:
//
//	GET  /signage/{camera}          the sign's full-screen page: notice summary and QR code, rotating
//	GET  /signage/{camera}/qr.png   a fresh token's QR code
//	GET  /c/{token}                 the phone's notice page (en / zh-CN by Accept-Language, ?lang= to switch)
//	POST /c/{token}                 choice=yes (with agree ticked) or choice=no
//	GET  /c/consent                 the shopper's consent: stand on the spot and confirm, or withdraw
//	POST /c/consent/confirm         bind to the one track in the opt-in zone
//	POST /c/consent/withdraw        end it; redacted again from the next frame
//	GET  /c/consent/receipt         the signed receipt (JSON)
//
// The phone keeps its consent id and secret in an HttpOnly, SameSite=Strict
// cookie scoped to /c/. Every POST needs the csrf form field to equal the
// veil_ccsrf cookie (double submit). Each client address gets at most
// WebOptions.RateLimit requests a minute to /c/.
const (
	cookieConsent = "veil_consent"
	cookieCSRF    = "veil_ccsrf"
)

// WebOptions configure the consent pages.
type WebOptions struct {
	// PublicURL is the base URL the QR codes point at (e.g.
	// "https://shop.example/"); empty: the scheme and host the signage page
	// was requested with.
	PublicURL string
	// Rotate is how often the signage page shows a new QR code.
	Rotate time.Duration
	// RateLimit is the most requests a minute from one client to /c/.
	RateLimit int
	// ClientIP names the client of a request (behind a trusted proxy, the
	// forwarded address); nil: the connection's address.
	ClientIP func(*http.Request) string
	Log      *slog.Logger
}

// Backend is what the phone pages ask of whoever serves them: the box's
// Service, or head office's consent relay (hq/relay). Errors are worded for
// the shopper (the Err... values of this package); a Backend that cannot
// reach the box returns ErrUnavailable.
type Backend interface {
	Notice() Notice             // the notice in force
	MaxDuration() time.Duration // the longest a consent lasts
	// Check verifies a QR code's token for showing the notice, without
	// using it up.
	Check(tok string) (Token, error)
	// Decide records the shopper's answer: no records nothing and returns
	// nil; yes returns the new grant (its ID and Secret go into the
	// phone's cookie).
	Decide(tok, lang string, yes bool) (*Grant, error)
	Status(id, secret string) (Grant, error)
	// Confirm binds the grant to the one track on the opt-in zone; a
	// relayed grant (Grant.Relayed) is bound by the box on its own.
	Confirm(id, secret string) (Grant, error)
	Withdraw(id, secret string) (Grant, error)
	Receipt(id, secret string) ([]byte, error) // the signed receipt, JSON
}

var _ Backend = (*Service)(nil)

// Handler serves the signage and phone pages.
func (s *Service) Handler(o WebOptions) http.Handler {
	if o.Rotate <= 0 {
		o.Rotate = s.o.TokenTTL / 2
	}
	if o.Log == nil {
		o.Log = s.log
	}
	w := newWebUI(s, s, o)
	w.mux.HandleFunc("GET /signage/{camera}", w.signage)
	w.mux.HandleFunc("GET /signage/{camera}/qr.png", w.qr)
	return w.mux
}

// PhoneHandler serves the phone pages (/c/...) over b: the same pages and
// templates the box serves, for head office's consent relay.
func PhoneHandler(b Backend, o WebOptions) http.Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return newWebUI(b, nil, o).mux
}

func newWebUI(b Backend, s *Service, o WebOptions) *webUI {
	if o.RateLimit <= 0 {
		o.RateLimit = 30
	}
	if o.ClientIP == nil {
		o.ClientIP = func(r *http.Request) string {
			h, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return h
		}
	}
	w := &webUI{b: b, s: s, o: o, hits: map[string]*hits{}, mux: http.NewServeMux()}
	mux := w.mux
	mux.HandleFunc("GET /c/consent", w.limited(w.status))
	mux.HandleFunc("POST /c/consent/confirm", w.limited(w.csrf(w.confirm)))
	mux.HandleFunc("POST /c/consent/withdraw", w.limited(w.csrf(w.withdraw)))
	mux.HandleFunc("GET /c/consent/receipt", w.limited(w.receipt))
	mux.HandleFunc("GET /c/{token}", w.limited(w.notice))
	mux.HandleFunc("POST /c/{token}", w.limited(w.csrf(w.decide)))
	return w
}

type webUI struct {
	b   Backend
	s   *Service // the box's, for the sign's pages; nil at head office
	o   WebOptions
	mux *http.ServeMux

	mu   sync.Mutex
	hits map[string]*hits
}

type hits struct {
	n    int
	from time.Time
}

// limited refuses a client's requests beyond RateLimit a minute.
func (w *webUI) limited(next http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		ip := w.o.ClientIP(r)
		now := time.Now()
		w.mu.Lock()
		if len(w.hits) > 4096 {
			for k, h := range w.hits {
				if now.Sub(h.from) > time.Minute {
					delete(w.hits, k)
				}
			}
		}
		h := w.hits[ip]
		if h == nil || now.Sub(h.from) > time.Minute {
			h = &hits{from: now}
			w.hits[ip] = h
		}
		h.n++
		over := h.n > w.o.RateLimit
		w.mu.Unlock()
		if over {
			w.o.Log.Warn("consent: too many requests", "remote", ip)
			rw.Header().Set("Retry-After", "60")
			w.page(rw, r, http.StatusTooManyRequests, page{Message: "Too many requests. Please wait a minute and try again. / 请求过多，请稍后再试。"})
			return
		}
		next(rw, r)
	}
}

// csrf refuses a POST whose csrf field does not match the cookie.
func (w *webUI) csrf(next http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieCSRF)
		if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
			w.o.Log.Warn("consent: refused a request without a valid CSRF token", "path", r.URL.Path, "remote", w.o.ClientIP(r))
			w.page(rw, r, http.StatusForbidden, page{Message: "This form has expired. Please scan the code on the sign again. / 表单已过期，请重新扫描标牌上的二维码。"})
			return
		}
		next(rw, r)
	}
}

// csrfToken returns the request's CSRF cookie value, setting a new one if
// there is none.
func (w *webUI) csrfToken(rw http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(cookieCSRF); err == nil && len(c.Value) >= 16 {
		return c.Value
	}
	v := NewNonce()
	http.SetCookie(rw, &http.Cookie{Name: cookieCSRF, Value: v, Path: "/c/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	return v
}

func (w *webUI) signage(rw http.ResponseWriter, r *http.Request) {
	cam := r.PathValue("camera")
	if w.s.Gate(cam) == nil {
		http.Error(rw, "no such signage camera", http.StatusNotFound)
		return
	}
	n := w.s.Notice()
	w.page(rw, r, http.StatusOK, page{Signage: true, Camera: cam, Refresh: int(w.o.Rotate.Seconds()), T: n.Texts["en"], T2: n.Texts["zh-CN"], Now: time.Now().UnixNano()})
}

func (w *webUI) qr(rw http.ResponseWriter, r *http.Request) {
	tok, _, err := w.s.IssueToken(r.PathValue("camera"))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusNotFound)
		return
	}
	base := w.o.PublicURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host + "/"
	}
	code, err := qr.Encode(strings.TrimSuffix(base, "/")+"/c/"+tok, qr.M)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	code.Scale = 8
	rw.Header().Set("Content-Type", "image/png")
	rw.Header().Set("Cache-Control", "no-store")
	_, _ = rw.Write(code.PNG())
}

// lang picks the page language: ?lang= or the form's lang, else the
// browser's Accept-Language.
func (w *webUI) lang(r *http.Request) string {
	n := w.b.Notice()
	if l := r.FormValue("lang"); l != "" {
		if _, ok := n.Texts[l]; ok {
			return l
		}
	}
	return n.Pick(r.Header.Get("Accept-Language"))
}

func (w *webUI) notice(rw http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	lang := w.lang(r)
	n := w.b.Notice()
	if _, err := w.b.Check(tok); err != nil {
		w.tokenRefused(rw, r, err)
		return
	}
	p := page{Notice: true, Token: tok, Lang: lang, T: n.Texts[lang], CSRF: w.csrfToken(rw, r), Langs: n.Langs(), Names: names(n),
		Duration: fmt.Sprintf(n.Texts[lang].Duration, w.b.MaxDuration()), NoticeVersion: n.Version}
	w.page(rw, r, http.StatusOK, p)
}

func (w *webUI) tokenRefused(rw http.ResponseWriter, r *http.Request, err error) {
	w.o.Log.Warn("consent: refused a code", "err", err, "remote", w.o.ClientIP(r))
	if errors.Is(err, ErrUnavailable) {
		w.page(rw, r, http.StatusServiceUnavailable, page{Message: "Sorry: " + err.Error() + ". / 抱歉，暂时无法连接店内的摄像设备，未记录任何内容，请稍后再试。"})
		return
	}
	status := http.StatusBadRequest
	if errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrTokenUsed) || errors.Is(err, ErrNoticeChanged) {
		status = http.StatusGone
	}
	w.page(rw, r, status, page{Message: "Sorry: " + err.Error() + ". Please scan the code on the sign again. / 抱歉，此二维码无效或已过期，请重新扫描标牌上的二维码。"})
}

func (w *webUI) decide(rw http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	lang := w.lang(r)
	n := w.b.Notice()
	t := n.Texts[lang]
	yes := r.PostFormValue("choice") == "yes"
	if yes && r.PostFormValue("agree") != "on" {
		// Not agreed: show the notice again, the code still unused.
		if _, err := w.b.Check(tok); err != nil {
			w.tokenRefused(rw, r, err)
			return
		}
		w.page(rw, r, http.StatusOK, page{Notice: true, Token: tok, Lang: lang, T: t, CSRF: w.csrfToken(rw, r), Langs: n.Langs(), Names: names(n),
			Duration: fmt.Sprintf(t.Duration, w.b.MaxDuration()), Message: t.AgreeFirst, NoticeVersion: n.Version})
		return
	}
	g, err := w.b.Decide(tok, lang, yes)
	if err != nil {
		w.tokenRefused(rw, r, err)
		return
	}
	if g == nil {
		w.page(rw, r, http.StatusOK, page{Lang: lang, T: t, Message: t.Declined})
		return
	}
	http.SetCookie(rw, &http.Cookie{Name: cookieConsent, Value: g.ID + "." + g.Secret, Path: "/c/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(w.b.MaxDuration().Seconds())})
	http.Redirect(rw, r, "/c/consent?lang="+lang, http.StatusSeeOther)
}

// mine finds the phone's consent from its cookie.
func (w *webUI) mine(r *http.Request) (id, secret string, ok bool) {
	c, err := r.Cookie(cookieConsent)
	if err != nil {
		return "", "", false
	}
	id, secret, ok = strings.Cut(c.Value, ".")
	return id, secret, ok
}

func (w *webUI) status(rw http.ResponseWriter, r *http.Request) {
	w.show(rw, r, func(id, secret string) (Grant, error) { return w.b.Status(id, secret) })
}

func (w *webUI) confirm(rw http.ResponseWriter, r *http.Request) {
	w.show(rw, r, func(id, secret string) (Grant, error) { return w.b.Confirm(id, secret) })
}

func (w *webUI) withdraw(rw http.ResponseWriter, r *http.Request) {
	w.show(rw, r, func(id, secret string) (Grant, error) { return w.b.Withdraw(id, secret) })
}

// show runs op on the phone's consent and shows the result.
func (w *webUI) show(rw http.ResponseWriter, r *http.Request, op func(id, secret string) (Grant, error)) {
	lang := w.lang(r)
	n := w.b.Notice()
	t := n.Texts[lang]
	id, secret, ok := w.mine(r)
	if !ok {
		w.o.Log.Warn("consent: request without a consent", "path", r.URL.Path, "remote", w.o.ClientIP(r))
		w.page(rw, r, http.StatusForbidden, page{Lang: lang, T: t, Message: ErrNoSuchConsent.Error()})
		return
	}
	g, err := op(id, secret)
	p := page{Consent: true, Lang: lang, T: t, CSRF: w.csrfToken(rw, r), G: g, Names: names(n), Langs: n.Langs()}
	status := http.StatusOK
	switch {
	case errors.Is(err, ErrNoSuchConsent):
		w.o.Log.Warn("consent: refused a request for an unknown consent or with a wrong secret", "path", r.URL.Path, "remote", w.o.ClientIP(r))
		w.page(rw, r, http.StatusForbidden, page{Lang: lang, T: t, Message: err.Error()})
		return
	case errors.Is(err, ErrNoneInZone):
		p.Message, status = t.NoneInZone, http.StatusConflict
	case errors.Is(err, ErrSeveralInZone):
		p.Message, status = t.SeveralInZone, http.StatusConflict
	case err != nil && !errors.Is(err, ErrEnded):
		p.Message, status = err.Error(), http.StatusServiceUnavailable
	}
	switch {
	case g.Ended == "withdrawn":
		p.Message = t.Withdrawn
	case g.Ended != "":
		p.Message = t.Ended
	case g.Bound && g.Suspended:
		p.Message = fmt.Sprintf(t.Bound, g.Expires.Local().Format("15:04")) + " " + text(suspendedTexts, lang)
	case g.Bound:
		p.Message = fmt.Sprintf(t.Bound, g.Expires.Local().Format("15:04"))
	case g.Unbound != "" && p.Message == "":
		p.Message = text(unboundTexts, lang)
	case g.Relayed && p.Message == "":
		p.Message = relayedText(lang)
	}
	w.page(rw, r, status, p)
}

func (w *webUI) receipt(rw http.ResponseWriter, r *http.Request) {
	id, secret, ok := w.mine(r)
	if !ok {
		http.Error(rw, ErrNoSuchConsent.Error(), http.StatusForbidden)
		return
	}
	b, err := w.b.Receipt(id, secret)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusForbidden)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Content-Disposition", `attachment; filename="veil-consent-`+id+`.json"`)
	_, _ = rw.Write(b)
}

// relayedTexts is what head office's consent page says once the grant was
// sent: head office cannot see whether the box bound it.
var relayedTexts = map[string]string{
	"en": "Your consent was sent to the shop's camera box. Stand alone on the marked spot in front of the sign now: " +
		"for %d seconds after receiving it, the camera looks for exactly one person there and leaves that person unredacted. " +
		"This page cannot show whether that happened. If nobody or more than one person was on the spot, nothing changes; " +
		"scan the code on the sign again to retry. Your consent also ends when you leave the camera's view, " +
		"and when another person comes so close to you that the camera can no longer tell you apart.",
	"zh-CN": "您的同意已发送到店内的摄像设备。请现在独自站在标牌前的标记位置：设备收到后的%d秒内，" +
		"会在该位置寻找唯一一人，并对其不做遮挡处理。本页面无法显示是否已成功。如果标记位置无人或多于一人，" +
		"则不会有任何变化，您可以重新扫描标牌上的二维码。离开摄像头画面后，或有他人靠近到摄像头无法区分您二人时，您的同意也会结束。",
}

func relayedText(lang string) string {
	return fmt.Sprintf(text(relayedTexts, lang), int(RelayBindWindow.Seconds()))
}

// suspendedTexts is added to the bound message while another face is close
// to the shopper's (see follow.go).
var suspendedTexts = map[string]string{
	"en":    "Someone is close to you in the camera's view right now, so you are redacted until you are apart again.",
	"zh-CN": "目前摄像画面中有人靠近您，因此在你们分开之前，您会被遮挡。",
}

// unboundTexts is what the phone says once the binding ended because
// another face came close (see follow.go); the consent itself is still on.
var unboundTexts = map[string]string{
	"en": "Another person came so close to you in the camera's view that the camera could no longer be sure which of you " +
		"had opted in, so you are redacted again. To be shown again, stand alone on the marked spot and tap Confirm.",
	"zh-CN": "摄像画面中有另一人与您靠得太近，摄像设备无法再确定哪一位是同意者，因此您重新被遮挡。如需再次显示，请独自站在标记位置并点击确认。",
}

// text is m's text in lang, or in English.
func text(m map[string]string, lang string) string {
	if t, ok := m[lang]; ok {
		return t
	}
	return m["en"]
}

func names(n Notice) map[string]string {
	m := map[string]string{}
	for l, t := range n.Texts {
		m[l] = t.LangName
	}
	return m
}

// page is what the one template shows.
type page struct {
	Signage, Notice, Consent bool
	Camera                   string
	Refresh                  int
	Now                      int64
	Token, Lang, CSRF        string
	T, T2                    NoticeText
	Langs                    []string
	Names                    map[string]string
	Duration                 string
	NoticeVersion            string
	Message                  string
	G                        Grant
}

func (w *webUI) page(rw http.ResponseWriter, r *http.Request, status int, p page) {
	if p.Lang == "" {
		p.Lang = "en"
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("Referrer-Policy", "no-referrer")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	rw.WriteHeader(status)
	if err := pageTmpl.Execute(rw, p); err != nil {
		w.o.Log.Warn("consent: rendering a page", "err", err)
	}
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Signage}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>{{if .T.Title}}{{.T.Title}}{{else}}veil{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;line-height:1.45;color:#111}
.choices{display:flex;gap:1rem;margin-top:1rem}
.choices button{flex:1;font-size:1.15rem;padding:.9rem;border:2px solid #222;border-radius:.5rem;background:#fff;color:#111}
p.msg{background:#f3f3f3;padding:.75rem;border-radius:.5rem}
.signage{text-align:center;max-width:none}.signage img{width:min(70vh,90vw);image-rendering:pixelated;padding:2rem;background:#fff}
</style></head>
<body{{if .Signage}} class="signage"{{end}}>
{{if .Signage}}
<h1>{{.T.Title}}</h1><h2>{{.T2.Title}}</h2>
<img id="qr" alt="QR code" src="/signage/{{.Camera}}/qr.png?{{.Now}}">
<p>{{.T.NoEffect}}<br>{{.T2.NoEffect}}</p>
{{else if .Notice}}
<nav>{{range .Langs}}{{if ne . $.Lang}}<a href="?lang={{.}}" hreflang="{{.}}">{{index $.Names .}}</a> {{end}}{{end}}</nav>
<h1>{{.T.Title}}</h1>
{{if .Message}}<p class="msg" role="alert">{{.Message}}</p>{{end}}
<p>{{.T.Controller}}</p><p>{{.T.Purpose}}</p><p>{{.T.Changes}}</p><p>{{.Duration}}</p><p>{{.T.Withdraw}}</p><p><strong>{{.T.NoEffect}}</strong></p>
<form method="post" action="/c/{{.Token}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="lang" value="{{.Lang}}">
<p><label><input type="checkbox" name="agree" id="agree"> {{.T.Checkbox}}</label></p>
<div class="choices"><button type="submit" name="choice" value="yes" id="yes">{{.T.Yes}}</button>
<button type="submit" name="choice" value="no" id="no">{{.T.No}}</button></div>
</form>
<p><small>{{.NoticeVersion}}</small></p>
{{else if .Consent}}
{{if .Message}}<p class="msg" role="status" id="msg">{{.Message}}</p>{{end}}
{{if not .G.Ended}}
{{if and (not .G.Bound) (not .G.Relayed)}}<p>{{.T.Stand}}</p>
<form method="post" action="/c/consent/confirm"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="lang" value="{{.Lang}}">
<div class="choices"><button type="submit" id="confirm">{{.T.Confirm}}</button></div></form>{{end}}
<form method="post" action="/c/consent/withdraw"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="lang" value="{{.Lang}}">
<div class="choices"><button type="submit" id="withdraw">{{.T.WithdrawButton}}</button></div></form>
{{end}}
<p><a href="/c/consent/receipt" id="receipt">{{.T.Receipt}}</a></p>
{{else}}
<p class="msg" role="alert" id="msg">{{.Message}}</p>
{{end}}
</body></html>
`))
