package web

import "time"

// Login failure limits. Each submitted user name (known or not, so a lockout
// does not reveal which names exist) and each client IP counts its failed
// logins. The failure that reaches the key's limit locks it for
// lockoutBase, and every further one for twice as long, up to lockoutMax; attempts while
// locked get 429 without a password check and are not counted. A key is
// forgotten after forgetAfter without failures; a successful login clears
// its user name (not its IP).
const (
	userFailureLimit = 5
	ipFailureLimit   = 20
	lockoutBase      = time.Second
	lockoutMax       = 5 * time.Minute
	forgetAfter      = 15 * time.Minute
	sweepAbove       = 1024 // sweep stale keys when the table is larger
)

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

// limiter counts failed logins; the Server's mutex guards it.
type limiter struct {
	keys map[string]*failures
}

func newLimiter() limiter { return limiter{keys: make(map[string]*failures)} }

func userKey(name string) string { return "user\x00" + name }
func ipKey(ip string) string     { return "ip\x00" + ip }

// locked returns how long the login attempt must wait, 0 when it may go on.
func (l *limiter) locked(now time.Time, ip, name string) time.Duration {
	var wait time.Duration
	for _, k := range []string{ipKey(ip), userKey(name)} {
		if f := l.keys[k]; f != nil && now.Before(f.until) {
			wait = max(wait, f.until.Sub(now))
		}
	}
	return wait
}

// fail counts a failed login.
func (l *limiter) fail(now time.Time, ip, name string) {
	if len(l.keys) > sweepAbove {
		for k, f := range l.keys {
			if now.Sub(f.last) > forgetAfter && !now.Before(f.until) {
				delete(l.keys, k)
			}
		}
	}
	l.count(now, ipKey(ip), ipFailureLimit)
	l.count(now, userKey(name), userFailureLimit)
}

func (l *limiter) count(now time.Time, key string, limit int) {
	f := l.keys[key]
	if f == nil || now.Sub(f.last) > forgetAfter {
		f = &failures{}
		l.keys[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - limit + 1; over > 0 {
		d := lockoutMax
		if over <= 20 {
			d = min(lockoutBase<<(over-1), lockoutMax)
		}
		f.until = now.Add(d)
	}
}

// succeed clears a user name's failures after a successful login.
func (l *limiter) succeed(name string) { delete(l.keys, userKey(name)) }
