package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"image/color"
	"math"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/egress"
)

// FieldError is one invalid configuration value. Its message names the key,
// the bad value and what is allowed:
//
//	detect.detector: "yolo" is not supported; allowed blazeface, haar
type FieldError struct {
	Key string // dotted key, e.g. "detect.detector"
	Msg string // what is wrong, ending in "; allowed ..."
	// Source names where the value came from when that was not the config
	// file or the default: an environment variable or a flag ("--every").
	// Load fills it in; Validate leaves it empty.
	Source string
}

func (e *FieldError) Error() string {
	s := e.Key + ": " + e.Msg
	if e.Source != "" {
		s += " (set by " + e.Source + ")"
	}
	return s
}

// limit is what one key accepts.
type limit struct {
	enum   []string // strings: one of these
	dir    bool     // strings: any non-empty path
	file   bool     // strings: any non-empty path (of a file)
	colour bool     // strings: #RRGGBB
	lo, hi float64  // numbers; durations in nanoseconds
	dur    bool     // lo, hi are durations
	blur   bool     // checked by blur.Options.Validate, not here
	text   bool     // strings: anything, empty included
	group  bool     // with text: an MQTT shared-subscription group (checked in crossErrors)
	name   bool     // strings: [A-Za-z0-9._-], 1..64 characters
	url    []string // strings: empty, or a URL with one of these schemes
	addr   bool     // strings: empty or host:port
	bcrypt bool     // strings: empty or a bcrypt hash
	ip     bool     // strings: empty or an IP address
	http   bool     // strings: empty or an absolute http:// or https:// URL
	edkey  bool     // strings: empty or an Ed25519 public key in standard base64
	devs   bool     // strings: empty or comma-separated store/device names
}

func oneOf(v ...string) limit      { return limit{enum: v} }
func between(lo, hi float64) limit { return limit{lo: lo, hi: hi} }
func durBetween(lo, hi time.Duration) limit {
	return limit{lo: float64(lo), hi: float64(hi), dur: true}
}
func byBlur(l limit) limit                { l.blur = true; return l }
func (l limit) inRange(v float64) bool    { return v >= l.lo && v <= l.hi } // false for NaN
func (l limit) fmtBound(v float64) string { return fmtNumber(v, l.dur) }
func fmtNumber(v float64, dur bool) string {
	if dur {
		return fmtDuration(time.Duration(v))
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// fmtDuration writes whole hours, minutes, seconds and milliseconds the way
// people write them ("168h", "30m", "60s", "1ms", "0") and anything else in
// Go syntax.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0 && d >= 2*time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0 && d >= 2*time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return d.String()
}

func (l limit) allowed() string {
	switch {
	case l.enum != nil:
		return strings.Join(l.enum, ", ")
	case l.dir:
		return "a directory path"
	case l.file:
		return "a file path"
	case l.http:
		return "an https:// URL (http:// only to a loopback address), or empty"
	case l.devs:
		return "empty (none) or store/device names separated by commas, e.g. shop_042/box-7, shop_042/box-8"
	case l.edkey:
		return "empty or head office's Ed25519 public key in standard base64 (44 characters; veil-hq relay-key prints it)"
	case l.colour:
		return "#RRGGBB"
	case l.name && l.text:
		return "1..128 of A-Z a-z 0-9 . _ - / (no leading or trailing /)"
	case l.group:
		return "a name without / + #, or - for a plain subscription"
	case l.text:
		return "any text"
	case l.addr:
		return "empty (off) or host:port, e.g. 127.0.0.1:8080 or :8080"
	case l.ip:
		return "empty (none) or an IP address, e.g. 127.0.0.1"
	case l.bcrypt:
		return "empty (no login) or a bcrypt hash from veil passwd ($2a$/$2b$/$2y$...)"
	case l.name:
		return "1..64 of A-Z a-z 0-9 . _ -"
	case l.url != nil:
		return "empty (no egress) or a URL " + strings.Join(l.url, "://, ") + "://host:port"
	}
	return l.fmtBound(l.lo) + ".." + l.fmtBound(l.hi)
}

// limits holds every key's allowed values. The redact ranges are enforced by
// blur.Options.Validate; they are repeated here only to word type errors, and
// a test keeps the two in step.
var limits = map[string]limit{
	"log.level":              oneOf("debug", "info", "warn", "error"),
	"log.format":             oneOf("text", "json"),
	"models.dir":             {dir: true},
	"detect.detector":        oneOf("blazeface", "haar"),
	"detect.score_threshold": between(0.05, 0.95),
	"detect.nms_iou":         between(0.1, 0.9),
	"detect.min_face":        between(8, 128),
	"detect.every":           between(1, 30),
	"detect.deadline":        durBetween(time.Millisecond, 60*time.Second),
	"detect.threads":         between(1, 64),
	"detect.edge_pad":        between(0, 0.25),
	"detect.full_every":      durBetween(0, 10*time.Second),
	"detect.max_face":        between(0, 4096),
	"detect.large_score":     between(0.05, 1),
	"track.hold":             durBetween(0, 30*time.Second),
	"track.tentative_hold":   durBetween(0, 30*time.Second),
	"track.lookahead":        between(0, 250),
	"track.growth":           between(0, 10),
	"track.match_iou":        between(0.05, 0.9),
	"track.confirm_score":    between(0, 1),
	"track.confirm_obs":      between(0, 30),
	"redact.style":           byBlur(oneOf(string(blur.Gaussian), string(blur.Mosaic), string(blur.Fill))),
	"redact.shape":           byBlur(oneOf(string(blur.Box), string(blur.Ellipse))),
	"redact.padding":         byBlur(between(0.2, 1)),
	"redact.sigma_divisor":   byBlur(between(1, 6)),
	"redact.mosaic_blocks":   byBlur(between(2, 6)),
	"redact.fill_color":      {colour: true},
	"output.codec":           oneOf("auto", "mjpg", "mp4v", "xvid"),
	"site.store":             {name: true},
	"site.device":            {name: true},
	"footfall.window":        durBetween(time.Second, 24*time.Hour),
	"footfall.band":          between(0.01, 0.5),
	"footfall.min_height":    between(0.01, 0.5),
	"footfall.journal_dir":   {dir: true},
	"footfall.detector":      oneOf(DetectPeople, DetectMotion),
	"footfall.person_model":  oneOf(PersonCenterNet, PersonSSDLite),
	"footfall.detect_every":  durBetween(0, 2*time.Second),
	"footfall.detect_width":  between(128, 1024),
	"footfall.person_score":  between(0.1, 0.9),
	"footfall.detect_share":  between(0, 0.5),
	"redact.target":          oneOf(TargetFaces, TargetHeads, TargetBodies),
	"mqtt.broker":            {url: []string{"tcp", "ssl", "mqtt", "mqtts"}},
	"mqtt.client_id":         {text: true},
	"mqtt.username":          {text: true},
	"mqtt.password":          {text: true},
	"mqtt.ca_file":           {text: true},
	"mqtt.cert_file":         {text: true},
	"mqtt.key_file":          {text: true},
	"mqtt.topic_prefix":      {name: true, text: true},
	"outbox.dir":             {dir: true},
	"outbox.max_entries":     between(10, 1000000),
	"http.listen":            {addr: true},
	"http.user":              {name: true},
	"http.password_hash":     {bcrypt: true},
	"http.tls_cert":          {text: true},
	"http.tls_key":           {text: true},
	"http.trusted_proxy":     {ip: true},
	"consent.ledger":         {dir: true},
	"consent.key_file":       {dir: true},
	"consent.max_duration":   durBetween(time.Minute, 12*time.Hour),
	"consent.token_ttl":      durBetween(10*time.Second, 10*time.Minute),
	"consent.retention":      durBetween(24*time.Hour, 87600*time.Hour),
	"consent.public_url":     {text: true},
	"consent.notice_file":    {text: true},
	"consent.relay_key":      {edkey: true},
	"mqtt.head_office_key":   {edkey: true},
	"mqtt.resend_after":      durBetween(time.Second, time.Hour),
	"live.detect_every":      between(1, 30),
	"live.detect_deadline":   durBetween(time.Millisecond, 60*time.Second),
	"update.root":            {dir: true},
	"update.metadata_url":    {http: true},
	"update.targets_url":     {http: true},
	"update.trusted_root":    {file: true},
	"update.interval":        durBetween(time.Second, 168*time.Hour),
	"update.health_timeout":  durBetween(10*time.Second, 30*time.Minute),
	"hq.listen":              {addr: true},
	"hq.user":                {name: true},
	"hq.password_hash":       {bcrypt: true},
	"hq.tls_cert":            {text: true},
	"hq.tls_key":             {text: true},
	"hq.trusted_proxy":       {ip: true},
	"hq.store":               oneOf("sqlite", "postgres"),
	"hq.sqlite_path":         {dir: true},
	"hq.postgres_dsn":        {text: true},
	"hq.client_id":           {text: true},
	"hq.group":               {text: true, group: true},
	"hq.batch":               between(1, 10000),
	"hq.stale_after":         durBetween(time.Minute, 168*time.Hour),
	"hq.boxes":               {text: true},
	"hq.unsigned_devices":    {devs: true},
	"hq.max_rate":            between(0.1, 1000),
	"hq.max_skew":            durBetween(time.Second, 24*time.Hour),
	"hq.relay_boxes":         {text: true},
	"hq.relay_key_file":      {dir: true},
	"hq.relay_ledger":        {dir: true},
}

// check returns what is wrong with v, or "".
func (l limit) check(v reflect.Value) string {
	switch {
	case v.Kind() == reflect.String:
		s := v.String()
		switch {
		case l.enum != nil && !slices.Contains(l.enum, s):
			return fmt.Sprintf("%q is not supported; allowed %s", s, l.allowed())
		case (l.dir || l.file) && s == "":
			return fmt.Sprintf(`"" is empty; allowed %s`, l.allowed())
		case l.name && !l.text && !validName(s):
			return fmt.Sprintf("%q is not a name; allowed %s", s, l.allowed())
		case l.name && l.text && !validTopic(s):
			return fmt.Sprintf("%q is not a topic prefix; allowed %s", s, l.allowed())
		case l.bcrypt && s != "" && !validBcrypt(s):
			return fmt.Sprintf("is not a bcrypt hash (a password must never be written here); allowed %s", l.allowed())
		case l.ip && s != "" && net.ParseIP(s) == nil:
			return fmt.Sprintf("%q is not an IP address; allowed %s", s, l.allowed())
		case l.addr && s != "" && !validAddr(s):
			return fmt.Sprintf("%q is not host:port; allowed %s", s, l.allowed())
		case l.devs && !validDevices(s):
			return fmt.Sprintf("%q is not a list of store/device; allowed %s", s, l.allowed())
		case l.edkey && s != "" && !validEd25519Key(s):
			return fmt.Sprintf("%q is not an Ed25519 public key; allowed %s", s, l.allowed())
		case l.http && s != "" && !validHTTPURL(s):
			return fmt.Sprintf("%q is not an absolute https:// URL (or http:// to a loopback address); allowed %s", s, l.allowed())
		case l.url != nil && s != "" && !validURL(s, l.url):
			return fmt.Sprintf("%q is not a broker URL; allowed %s", s, l.allowed())
		case l.colour:
			if _, ok := parseColour(s); !ok {
				hint := ""
				if s == "" {
					hint = ` (quote it in YAML: fill_color: "#404040"; an unquoted # starts a comment)`
				}
				return fmt.Sprintf("%q is not a colour; allowed %s%s", s, l.allowed(), hint)
			}
		}
		return ""
	case v.Type() == durationType:
		d := time.Duration(v.Int())
		if l.inRange(float64(d)) {
			return ""
		}
		what := "is out of range"
		if d < 0 {
			what = "is negative"
		}
		return fmt.Sprintf("%s %s; allowed %s", d, what, l.allowed())
	case v.CanInt():
		if n := v.Int(); !l.inRange(float64(n)) {
			return fmt.Sprintf("%d is out of range; allowed %s", n, l.allowed())
		}
		return ""
	case v.CanFloat():
		f := v.Float()
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			return fmt.Sprintf("%g is not a finite number; allowed %s", f, l.allowed())
		case !l.inRange(f):
			return fmt.Sprintf("%g is out of range; allowed %s", f, l.allowed())
		}
		return ""
	}
	panic(fmt.Sprintf("config: no check for %s", v.Type()))
}

// Validate reports every invalid value in c, joined with errors.Join, in key
// order. Each is a *FieldError worded "<key>: <bad value> ...; allowed ...".
// The redact keys are checked by blur.Options.Validate, so the strength floor
// lives in one place.
func (c Config) Validate() error {
	var errs []*FieldError
	for _, k := range keys {
		l := limits[k.name]
		if l.blur {
			continue
		}
		if msg := l.check(c.value(k)); msg != "" {
			errs = append(errs, &FieldError{Key: k.name, Msg: msg})
		}
	}
	if _, err := c.Redact.BlurOptions(); err != nil {
		for _, e := range flatten(err) {
			var fe *FieldError
			if errors.As(e, &fe) && fe.Key == "redact.fill_color" {
				continue // already reported above
			}
			if errors.As(e, &fe) {
				errs = append(errs, fe)
			} else {
				errs = append(errs, &FieldError{Key: "redact", Msg: e.Error()})
			}
		}
	}
	errs = append(errs, c.crossErrors()...)
	slices.SortStableFunc(errs, func(a, b *FieldError) int { return keyOrder(a.Key) - keyOrder(b.Key) })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// keyOrder is the position in Config of a key, or of a section's first key;
// past the end for anything else.
func keyOrder(name string) int {
	for i, k := range keys {
		if k.name == name || strings.HasPrefix(k.name, name+".") {
			return i
		}
	}
	return len(keys)
}

// BlurOptions converts r into the options of a blur.Redactor and validates
// them. Errors are *FieldErrors keyed "redact.<field>", joined.
func (r Redact) BlurOptions() (blur.Options, error) {
	o := blur.Options{
		Style:        blur.Style(r.Style),
		Shape:        blur.Shape(r.Shape),
		Padding:      r.Padding,
		SigmaDivisor: r.SigmaDivisor,
		MosaicBlocks: r.MosaicBlocks,
	}
	var errs []error
	if c, ok := parseColour(r.FillColor); ok {
		o.FillColor = c
	} else {
		msg := limits["redact.fill_color"].check(reflect.ValueOf(r.FillColor))
		errs = append(errs, &FieldError{Key: "redact.fill_color", Msg: msg})
	}
	if err := o.Validate(); err != nil {
		for _, e := range flatten(err) {
			field, msg, ok := strings.Cut(e.Error(), ": ")
			if _, known := keyByName["redact."+field]; ok && known {
				errs = append(errs, &FieldError{Key: "redact." + field, Msg: msg})
			} else {
				errs = append(errs, &FieldError{Key: "redact", Msg: e.Error()})
			}
		}
	}
	if len(errs) > 0 {
		return blur.Options{}, errors.Join(errs...)
	}
	return o, nil
}

// parseColour parses "#RRGGBB" (either case) into an opaque colour.
func parseColour(s string) (color.RGBA, bool) {
	if len(s) != 7 || s[0] != '#' {
		return color.RGBA{}, false
	}
	var b [3]uint8
	for i := range b {
		n, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return color.RGBA{}, false
		}
		b[i] = uint8(n)
	}
	return color.RGBA{R: b[0], G: b[1], B: b[2], A: 255}, true
}

// flatten returns the leaves of a tree of joined errors. A wrapper around
// several joined errors (as mapstructure's "decoding failed due to the
// following error(s)") is dropped in favour of them.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	if inner := flatten(errors.Unwrap(err)); len(inner) > 1 {
		return inner
	}
	return []error{err}
}

// crossErrors checks rules that tie keys together.
func (c Config) crossErrors() []*FieldError {
	var errs []*FieldError
	// A face confirmed on its ConfirmObs-th keyframe is covered back to its
	// first detection only if those frames are still held back.
	if t, d := c.Track, c.Detect; t.ConfirmObs > 1 && d.Every > 0 {
		if need := (t.ConfirmObs - 1) * d.Every; t.Lookahead < need {
			errs = append(errs, &FieldError{Key: "track.lookahead", Msg: fmt.Sprintf(
				"%d frames cannot cover a face confirmed on its keyframe %d (track.confirm_obs %d, detect.every %d); allowed %d..250, or lower track.confirm_obs",
				t.Lookahead, t.ConfirmObs, t.ConfirmObs, d.Every, need)})
		}
	}
	if h := c.HTTP; (h.TLSCert == "") != (h.TLSKey == "") {
		errs = append(errs, &FieldError{Key: "http.tls_key", Msg: "http.tls_cert and http.tls_key go together; allowed both set or both empty"})
	}
	if m := c.MQTT; m.Broker != "" && (m.CertFile == "") != (m.KeyFile == "") {
		errs = append(errs, &FieldError{Key: "mqtt.key_file", Msg: "mqtt.cert_file and mqtt.key_file go together; allowed both set or both empty"})
	}
	if h := c.HQ; (h.TLSCert == "") != (h.TLSKey == "") {
		errs = append(errs, &FieldError{Key: "hq.tls_key", Msg: "hq.tls_cert and hq.tls_key go together; allowed both set or both empty"})
	}
	if h := c.HQ; h.Store == "postgres" && h.PostgresDSN == "" {
		errs = append(errs, &FieldError{Key: "hq.postgres_dsn", Msg: `is empty but hq.store is "postgres"; allowed a PostgreSQL connection string (postgres://user@host/db or key=value form)`})
	}
	if g := c.HQ.Group; g != "-" && (g == "" || strings.ContainsAny(g, "/+#")) {
		errs = append(errs, &FieldError{Key: "hq.group", Msg: fmt.Sprintf("%q is not a shared-subscription group; allowed a name without / + # (e.g. veil-hq), or - for a plain subscription", g)})
	}
	if u := c.Update; (u.MetadataURL == "") != (u.TargetsURL == "") {
		errs = append(errs, &FieldError{Key: "update.targets_url", Msg: "update.metadata_url and update.targets_url go together; allowed both set (update agent on) or both empty (off)"})
	}
	return errs
}

// validDevices reports whether s is empty or store/device names separated
// by commas (spaces around them allowed).
func validDevices(s string) bool {
	if strings.TrimSpace(s) == "" {
		return true
	}
	for _, f := range strings.Split(s, ",") {
		st, dev, ok := strings.Cut(strings.TrimSpace(f), "/")
		if !ok || !validName(st) || !validName(dev) {
			return false
		}
	}
	return true
}

// validEd25519Key reports whether s is 32 bytes in standard base64.
func validEd25519Key(s string) bool {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == ed25519.PublicKeySize
}

// validName reports whether s is a store or device name: it goes into MQTT
// topics, so no wildcards, separators or spaces.
func validName(s string) bool { return egress.NameProblem(s) == "" }

func validTopic(s string) bool {
	if len(s) < 1 || len(s) > 128 || s[0] == '/' || s[len(s)-1] == '/' || strings.Contains(s, "//") {
		return false
	}
	for _, part := range strings.Split(s, "/") {
		if !validName(part) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func validURL(s string, schemes []string) bool {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !slices.Contains(schemes, scheme) {
		return false
	}
	host, port, ok := strings.Cut(rest, ":")
	if !ok || host == "" || strings.ContainsAny(host, "/ ") {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(port, "/"))
	return err == nil && n > 0 && n < 65536
}

// validHTTPURL reports whether s is an absolute http or https URL with a
// host name or address.
// validHTTPURL accepts https, and plain http only to a loopback address
// (the update client refuses anything else: metadata and bundles would
// travel unencrypted).
func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		ip := net.ParseIP(u.Hostname())
		return u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()
	}
	return false
}

func validAddr(s string) bool {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.ContainsAny(s, " /") {
		return false
	}
	n, err := strconv.Atoi(s[i+1:])
	return err == nil && n >= 0 && n < 65536
}

// validBcrypt reports whether s looks like a bcrypt hash: $2a$, $2b$ or $2y$,
// a two-digit cost and 53 characters of salt and hash.
func validBcrypt(s string) bool {
	if len(s) != 60 || s[0] != '$' || s[1] != '2' || s[3] != '$' || s[6] != '$' {
		return false
	}
	return strings.ContainsRune("aby", rune(s[2])) && s[4] >= '0' && s[4] <= '3' && s[5] >= '0' && s[5] <= '9'
}
