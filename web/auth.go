package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// HashCost is the bcrypt cost HashPassword uses.
const HashCost = bcrypt.DefaultCost

// maxNameLen bounds user names, in config and in the login form.
const maxNameLen = 64

// maxFormBytes bounds the body of POST /login and /logout.
const maxFormBytes = 4 << 10

type user struct {
	name string
	hash []byte
}

type session struct {
	user    string
	csrf    string
	expires time.Time
}

type ctxKey struct{}

// UserFromContext returns the logged-in user's name in a handler mounted
// with Server.Handle.
func UserFromContext(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(ctxKey{}).(*session)
	if !ok {
		return "", false
	}
	return s.user, true
}

// CSRFFromContext returns the session's CSRF token in a handler mounted
// with Server.Handle or as Options.Home, for the pages' logout form (field
// "csrf") and <meta name="veil-csrf">.
func CSRFFromContext(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(ctxKey{}).(*session)
	if !ok {
		return "", false
	}
	return s.csrf, true
}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(ctxKey{}).(*session)
	return s
}

// HashPassword returns the bcrypt hash of pw (cost HashCost) for
// User.PasswordHash. bcrypt uses at most 72 bytes; longer passwords are
// refused rather than silently truncated.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("hashing password: empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), HashCost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}

func (s *Server) setUsers(us []User) error {
	if len(us) == 0 {
		return ErrNoUsers
	}
	seen := make(map[string]bool, len(us))
	maxCost := bcrypt.MinCost
	for i, u := range us {
		switch {
		case u.Name == "" || len(u.Name) > maxNameLen:
			return fmt.Errorf("users[%d] %q: %w: must be 1 to %d bytes", i, u.Name, ErrBadUser, maxNameLen)
		case !utf8.ValidString(u.Name) || strings.ContainsFunc(u.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf("users[%d] %q: %w: control characters or invalid UTF-8", i, u.Name, ErrBadUser)
		case seen[u.Name]:
			return fmt.Errorf("users[%d] %q: %w: duplicate", i, u.Name, ErrBadUser)
		}
		seen[u.Name] = true
		cost, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil || !strings.HasPrefix(u.PasswordHash, "$2") {
			return fmt.Errorf("users[%d] %q: %w (want \"$2a$\" or \"$2b$…\", as `veil passwd` prints)", i, u.Name, ErrNotBcrypt)
		}
		maxCost = max(maxCost, cost)
		s.users = append(s.users, user{name: u.Name, hash: []byte(u.PasswordHash)})
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("veil: no such user"), maxCost)
	if err != nil {
		return fmt.Errorf("making the unknown-user hash: %w", err)
	}
	s.dummy = dummy
	return nil
}

// check reports whether name and pw match a user. It compares the name
// against every user in constant time and always runs one bcrypt
// comparison, so an unknown name takes as long as a wrong password.
func (s *Server) check(ctx context.Context, name, pw string) (bool, error) {
	select {
	case s.checks <- struct{}{}:
		defer func() { <-s.checks }()
	case <-ctx.Done():
		return false, ctx.Err()
	}
	hash, known := s.dummy, 0
	for _, u := range s.users {
		if subtle.ConstantTimeCompare([]byte(name), []byte(u.name)) == 1 {
			hash, known = u.hash, 1
		}
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
	return ok && known == 1, nil
}

func (s *Server) cookieName() string {
	if s.secure {
		return "__Host-veil_session" // browsers require Secure, Path=/ and no Domain
	}
	return "veil_session"
}

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// newSession stores a session for name and returns its cookie token.
func (s *Server) newSession(name string) (string, error) {
	tok, err := randomToken()
	if err != nil {
		return "", fmt.Errorf("making session token: %w", err)
	}
	csrf, err := randomToken()
	if err != nil {
		return "", fmt.Errorf("making CSRF token: %w", err)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.sessions {
		if !now.Before(v.expires) {
			delete(s.sessions, k)
		}
	}
	s.sessions[sha256.Sum256([]byte(tok))] = &session{user: name, csrf: csrf, expires: now.Add(s.ttl)}
	return tok, nil
}

// lookup returns the session of r's cookie, or why there is none.
func (s *Server) lookup(r *http.Request) (*session, string) {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return nil, "no session cookie"
	}
	key := sha256.Sum256([]byte(c.Value))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[key]
	switch {
	case !ok:
		return nil, "unknown session"
	case !s.now().Before(sess.expires):
		delete(s.sessions, key)
		return nil, "session expired"
	}
	return sess, ""
}

func (s *Server) deleteSession(r *http.Request) {
	if c, err := r.Cookie(s.cookieName()); err == nil {
		key := sha256.Sum256([]byte(c.Value))
		s.mu.Lock()
		delete(s.sessions, key)
		s.mu.Unlock()
	}
}

// requireSession admits requests with a valid session (and, for unsafe
// methods, the CSRF token; formCSRF also accepts it as the form field
// "csrf") and puts the session in the request context. Without a session,
// a GET or HEAD outside /api/ is redirected to /login unless api is set;
// anything else gets 401.
func (s *Server) requireSession(next http.Handler, formCSRF, api bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, why := s.lookup(r)
		if sess == nil {
			if !api && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/api/") {
				s.log.Info("refused request", "reason", why, "method", r.Method, "path", r.URL.Path, "remote", s.clientIP(r))
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			s.refuse(w, r, http.StatusUnauthorized, why, "")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			tok := r.Header.Get(CSRFHeader)
			if tok == "" && formCSRF {
				r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
				tok = r.PostFormValue("csrf")
			}
			if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(sess.csrf)) != 1 {
				s.refuse(w, r, http.StatusForbidden, "missing or wrong CSRF token", sess.user)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, sess)))
	})
}

// refuse logs a refused request and answers with status and a generic text.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, why, user string) {
	args := []any{"reason", why, "method", r.Method, "path", r.URL.Path, "remote", s.clientIP(r), "status", status}
	if user != "" {
		args = append(args, "user", user)
	}
	s.log.Warn("refused request", args...)
	http.Error(w, http.StatusText(status), status)
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, http.StatusOK, "")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.refuse(w, r, http.StatusBadRequest, "unreadable login form", "")
		return
	}
	name, pw := r.PostForm.Get("user"), r.PostForm.Get("password")
	if len(name) > maxNameLen {
		name = name[:maxNameLen] // no user has a longer name; bounds logs and limiter keys
	}
	ip := s.clientIP(r)

	s.mu.Lock()
	wait := s.limiter.locked(s.now(), ip, name)
	s.mu.Unlock()
	if wait > 0 {
		s.logins.WithLabelValues("limited").Inc()
		secs := int((wait + time.Second - 1) / time.Second)
		s.log.Warn("login refused: too many failures", "user", name, "remote", ip, "retry_after_s", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.renderLogin(w, http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts. Try again in %d s.", secs))
		return
	}

	ok, err := s.check(r.Context(), name, pw)
	if err != nil {
		return // client gone
	}
	if !ok {
		s.mu.Lock()
		s.limiter.fail(s.now(), ip, name)
		s.mu.Unlock()
		s.logins.WithLabelValues("failed").Inc()
		s.log.Warn("login failed", "user", name, "remote", ip)
		s.renderLogin(w, http.StatusUnauthorized, "Wrong user name or password.")
		return
	}
	tok, err := s.newSession(name)
	if err != nil {
		s.log.Error("login", "user", name, "remote", ip, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.limiter.succeed(name)
	s.mu.Unlock()
	s.logins.WithLabelValues("ok").Inc()
	s.log.Info("login", "user", name, "remote", ip)
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(),
		Value:    tok,
		Path:     "/",
		MaxAge:   int(s.ttl / time.Second),
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.deleteSession(r)
	s.log.Info("logout", "user", sessionFrom(r.Context()).user, "remote", s.clientIP(r))
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(),
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
