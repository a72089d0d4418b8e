package dashboard

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
)

// Periods the period parameter allows. Every period is whole UTC days;
// "today" and the "last N days" periods end at the end of today.
const (
	periodToday     = "today"
	periodYesterday = "yesterday"
	period7d        = "7d"
	period30d       = "30d"
	periodCustom    = "custom"
)

var periods = []string{periodToday, periodYesterday, period7d, period30d, periodCustom}

// Bounds on a period, so that one request cannot ask for millions of
// buckets: with day buckets at most maxDays days, with hour buckets at most
// maxHourDays days (744 buckets).
const (
	maxDays     = 400
	maxHourDays = 31
)

// dateLayout is the format of the from and to parameters.
const dateLayout = "2006-01-02"

// paramNames are the query parameters the pages, the CSV export and the
// JSON totals accept; any other is refused.
var paramNames = []string{"period", "from", "to", "bucket", "store", "camera"}

// params is a parsed, valid query: a period of whole UTC days, a bucket
// size and optional filters.
type params struct {
	Period   string    // one of periods
	From, To time.Time // the period, [From, To), UTC midnights
	Bucket   string    // store.Hour or store.Day
	Store    string    // only this store; "" for all
	Camera   string    // only this camera; "" for all
}

// paramError is a bad query parameter: which one and why.
type paramError struct {
	Param string // the parameter's name; "" when the query string itself is malformed
	Msg   string
}

func (e *paramError) Error() string {
	if e.Param == "" {
		return "query string: " + e.Msg
	}
	return fmt.Sprintf("parameter %s: %s", quote(e.Param), e.Msg)
}

// quote quotes an outside value for an error message, cut to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q…", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// parseParams parses the raw query string of a dashboard request, with now
// for the relative periods. Every parameter is optional and may appear at
// most once:
//
//	period  today, yesterday, 7d, 30d or custom; default 7d, or custom when
//	        from or to is given
//	from    first day of a custom period, YYYY-MM-DD (UTC); ignored otherwise
//	to      last day of a custom period (inclusive), YYYY-MM-DD (UTC)
//	bucket  hour or day; default day
//	store   only this store (1..64 of A-Z a-z 0-9 . _ -); "" for all
//	camera  only this camera, likewise
//
// A period spans at most maxDays days, or maxHourDays with hour buckets.
// The error, a *paramError, names the parameter and the allowed values.
func parseParams(raw string, now time.Time) (params, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		// url's error quotes the bad escape, at most 3 bytes.
		return params{}, &paramError{Msg: err.Error()}
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if !slices.Contains(paramNames, k) {
			return params{}, &paramError{Param: k, Msg: fmt.Sprintf("unknown parameter; allowed %s", strings.Join(paramNames, ", "))}
		}
		if n := len(v[k]); n > 1 {
			return params{}, &paramError{Param: k, Msg: fmt.Sprintf("given %d times; allowed once", n)}
		}
	}

	p := params{Bucket: v.Get("bucket"), Period: v.Get("period"), Store: v.Get("store"), Camera: v.Get("camera")}
	switch p.Bucket {
	case "":
		p.Bucket = store.Day
	case store.Hour, store.Day:
	default:
		return params{}, &paramError{Param: "bucket", Msg: fmt.Sprintf("%s; allowed %s or %s", quote(p.Bucket), store.Hour, store.Day)}
	}
	for _, f := range []struct{ name, v string }{{"store", p.Store}, {"camera", p.Camera}} {
		if msg := checkName(f.v); msg != "" {
			return params{}, &paramError{Param: f.name, Msg: msg}
		}
	}

	from, to := v.Get("from"), v.Get("to")
	if p.Period == "" {
		p.Period = period7d
		if from != "" || to != "" {
			p.Period = periodCustom
		}
	}
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	switch p.Period {
	case periodToday:
		p.From, p.To = today, today.Add(day)
	case periodYesterday:
		p.From, p.To = today.Add(-day), today
	case period7d:
		p.From, p.To = today.AddDate(0, 0, -6), today.Add(day)
	case period30d:
		p.From, p.To = today.AddDate(0, 0, -29), today.Add(day)
	case periodCustom:
		first, err := parseDate("from", from)
		if err != nil {
			return params{}, err
		}
		last, err := parseDate("to", to)
		if err != nil {
			return params{}, err
		}
		if last.Before(first) {
			return params{}, &paramError{Param: "to", Msg: fmt.Sprintf("%s is before from %s; allowed from's day or later", quote(to), quote(from))}
		}
		if days := last.Sub(first)/day + 1; days > maxDays {
			return params{}, &paramError{Param: "to", Msg: fmt.Sprintf("the period from %s to %s has %d days; allowed at most %d", from, to, days, maxDays)}
		}
		p.From, p.To = first, last.Add(day)
	default:
		return params{}, &paramError{Param: "period", Msg: fmt.Sprintf("%s; allowed %s", quote(p.Period), strings.Join(periods, ", "))}
	}
	if days := p.days(); p.Bucket == store.Hour && days > maxHourDays {
		return params{}, &paramError{Param: "bucket", Msg: fmt.Sprintf("hour buckets allow periods of at most %d days, this one has %d; allowed day, or a shorter period", maxHourDays, days)}
	}
	return p, nil
}

// parseDate parses a custom period's day.
func parseDate(name, s string) (time.Time, error) {
	const allowed = "allowed a day YYYY-MM-DD (UTC) from 1970-01-01 to 9999-12-30"
	if s == "" {
		return time.Time{}, &paramError{Param: name, Msg: "missing; period custom needs from and to; " + allowed}
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil || t.Year() < 1970 || t.After(time.Date(9999, 12, 30, 0, 0, 0, 0, time.UTC)) {
		return time.Time{}, &paramError{Param: name, Msg: fmt.Sprintf("%s; %s", quote(s), allowed)}
	}
	return t, nil
}

// checkName checks a store or camera filter by egress's rule for names,
// returning why it is bad or "".
func checkName(s string) string {
	if s == "" {
		return ""
	}
	if p := egress.NameProblem(s); p != "" {
		return p + ", or empty for all"
	}
	return ""
}

// days is the length of the period in days.
func (p params) days() int { return int(p.To.Sub(p.From) / (24 * time.Hour)) }

// query is the store query of the period.
func (p params) query() store.Query {
	return store.Query{Store: p.Store, Camera: p.Camera, From: p.From, To: p.To, Bucket: p.Bucket}
}

// previous is the store query of the period of equal length just before,
// by day (only its sums are shown).
func (p params) previous() store.Query {
	q := p.query()
	q.From, q.To, q.Bucket = p.From.Add(-p.To.Sub(p.From)), p.From, store.Day
	return q
}

// lastDay is the period's last day, inclusive, as YYYY-MM-DD.
func (p params) lastDay() string { return p.To.AddDate(0, 0, -1).Format(dateLayout) }

// encode is the canonical query string of p: parseParams gives p back.
func (p params) encode() string {
	v := url.Values{"period": {p.Period}, "bucket": {p.Bucket}}
	if p.Period == periodCustom {
		v.Set("from", p.From.Format(dateLayout))
		v.Set("to", p.lastDay())
	}
	if p.Store != "" {
		v.Set("store", p.Store)
	}
	if p.Camera != "" {
		v.Set("camera", p.Camera)
	}
	return v.Encode()
}
