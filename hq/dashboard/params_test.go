package dashboard

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/veil-edge/veil/hq/store"
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// TestParseParams checks the periods, defaults and filters parseParams
// resolves, and that encode gives them back.
func TestParseParams(t *testing.T) {
	now := time.Date(2026, 3, 14, 23, 59, 59, 0, time.FixedZone("CET", 3600)) // 22:59:59 UTC
	for _, tc := range []struct {
		raw  string
		want params
	}{
		{"", params{Period: "7d", From: date(2026, 3, 8), To: date(2026, 3, 15), Bucket: store.Day}},
		{"period=today", params{Period: "today", From: date(2026, 3, 14), To: date(2026, 3, 15), Bucket: store.Day}},
		{"period=yesterday&bucket=hour", params{Period: "yesterday", From: date(2026, 3, 13), To: date(2026, 3, 14), Bucket: store.Hour}},
		{"period=30d&bucket=hour", params{Period: "30d", From: date(2026, 2, 13), To: date(2026, 3, 15), Bucket: store.Hour}},
		{"period=7d&from=2020-01-01&to=", params{Period: "7d", From: date(2026, 3, 8), To: date(2026, 3, 15), Bucket: store.Day}}, // from/to ignored
		{"from=2026-02-01&to=2026-02-01", params{Period: "custom", From: date(2026, 2, 1), To: date(2026, 2, 2), Bucket: store.Day}},
		{"period=custom&from=2024-02-28&to=2024-03-01&bucket=day", params{Period: "custom", From: date(2024, 2, 28), To: date(2024, 3, 2), Bucket: store.Day}},
		{"from=2025-01-01&to=2026-02-04", params{Period: "custom", From: date(2025, 1, 1), To: date(2026, 2, 5), Bucket: store.Day}}, // 400 days
		{"from=2026-01-01&to=2026-01-31&bucket=hour", params{Period: "custom", From: date(2026, 1, 1), To: date(2026, 2, 1), Bucket: store.Hour}},
		{"store=s1&camera=door.A_2-x&store2=", params{}},
		{"store=s1&camera=door.A_2-x", params{Period: "7d", From: date(2026, 3, 8), To: date(2026, 3, 15), Bucket: store.Day, Store: "s1", Camera: "door.A_2-x"}},
		{"store=&camera=", params{Period: "7d", From: date(2026, 3, 8), To: date(2026, 3, 15), Bucket: store.Day}},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := parseParams(tc.raw, now)
			if tc.want == (params{}) {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			again, err := parseParams(got.encode(), now)
			if err != nil || again != got {
				t.Errorf("encode %q parses to %+v, %v", got.encode(), again, err)
			}
			if q := got.previous(); !q.To.Equal(got.From) || q.To.Sub(q.From) != got.To.Sub(got.From) {
				t.Errorf("previous %v..%v of %v..%v", q.From, q.To, got.From, got.To)
			}
		})
	}
}

// FuzzParseParams checks that any query string either parses to a valid,
// bounded period that encode gives back, or fails with a *paramError that
// names a parameter (or the query string) and says what is allowed.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{
		"", "period=today", "period=yesterday&bucket=hour", "period=30d", "from=2026-01-01&to=2026-01-31&bucket=hour",
		"from=1970-01-01&to=1971-01-01", "from=9999-12-30&to=9999-12-30", "store=s1&camera=door", "period=custom",
		"x=1", "period=7d&period=7d", "from=2026-02-30&to=2026-03-01", "store=%ff", "%zz", "a;b", "from=+2026-01-01",
	} {
		f.Add(s, int64(1773500000))
	}
	f.Fuzz(func(t *testing.T, raw string, unix int64) {
		now := time.Unix(unix%(200*365*86400), 0) // about 1830 to 2170
		p, err := parseParams(raw, now)
		if err != nil {
			var pe *paramError
			if !errors.As(err, &pe) {
				t.Fatalf("%q: error %T %v is not a *paramError", raw, err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "parameter ") && !strings.HasPrefix(msg, "query string: ") || !utf8.ValidString(msg) && pe.Param == "" {
				t.Fatalf("%q: error %q names no parameter", raw, msg)
			}
			if pe.Param != "" && !strings.Contains(msg, "allowed") {
				t.Fatalf("%q: error %q does not say what is allowed", raw, msg)
			}
			if len(msg) > 400 {
				t.Fatalf("%q: error of %d bytes", raw, len(msg))
			}
			return
		}
		days := p.days()
		switch {
		case p.Bucket != store.Hour && p.Bucket != store.Day:
			t.Fatalf("%q: bucket %q", raw, p.Bucket)
		case !p.To.After(p.From) || p.From.Location() != time.UTC || p.To.Location() != time.UTC:
			t.Fatalf("%q: period %v..%v", raw, p.From, p.To)
		case p.From.Truncate(24*time.Hour) != p.From || p.To.Truncate(24*time.Hour) != p.To:
			t.Fatalf("%q: period %v..%v is not whole days", raw, p.From, p.To)
		case days > maxDays || p.Bucket == store.Hour && days > maxHourDays:
			t.Fatalf("%q: %d days by %s", raw, days, p.Bucket)
		case checkName(p.Store) != "" || checkName(p.Camera) != "":
			t.Fatalf("%q: filters %q %q", raw, p.Store, p.Camera)
		}
		again, err := parseParams(p.encode(), now)
		if err != nil || again != p {
			t.Fatalf("%q: encode %q parses to %+v, %v; want %+v", raw, p.encode(), again, err, p)
		}
	})
}
