package egress

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// goldenReport is the report in testdata/report.golden.json.
var goldenReport = Report{
	Device: "box-7", Store: "shop_042", Camera: "entrance.1", Line: "door",
	Start: time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC),
	End:   time.Date(2025, 3, 14, 9, 15, 0, 0, time.UTC),
	In:    17, Out: 12, Boot: 3, Seq: 42,
}

// TestReportGolden pins the exact wire format: field names, order, time
// format and no extra white space. Run with -update to rewrite the file
// after a deliberate change (head office parses it).
func TestReportGolden(t *testing.T) {
	got, err := goldenReport.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "report.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestReportGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("wire format changed:\n got %s\nwant %s", got, want)
	}
	back, err := ParseReport(want)
	if err != nil {
		t.Fatalf("ParseReport(golden): %v", err)
	}
	if back != goldenReport {
		t.Errorf("ParseReport(golden) = %+v, want %+v", back, goldenReport)
	}
}

// TestReportMarshal checks the encodings that are not in the golden file:
// times in another zone come out in UTC, fractions of a second are kept,
// and what Marshal writes ParseReport reads back equal.
func TestReportMarshal(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name       string
		start, end time.Time
		want       string // substring of the output
	}{
		{"zone converted to UTC", time.Date(2025, 3, 14, 10, 0, 0, 0, berlin), time.Date(2025, 3, 14, 10, 15, 0, 0, berlin),
			`"start":"2025-03-14T09:00:00Z","end":"2025-03-14T09:15:00Z"`},
		{"fraction kept", time.Date(2025, 3, 14, 9, 0, 0, 500_000_000, time.UTC), time.Date(2025, 3, 14, 9, 0, 1, 0, time.UTC),
			`"start":"2025-03-14T09:00:00.5Z","end":"2025-03-14T09:00:01Z"`},
		{"monotonic reading dropped", time.Now(), time.Now().Add(time.Minute), `"start":"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goldenReport
			r.Start, r.End = tc.start, tc.end
			b, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.want) {
				t.Errorf("Marshal = %s, want it to contain %s", b, tc.want)
			}
			back, err := ParseReport(b)
			if err != nil {
				t.Fatal(err)
			}
			if !sameReport(back, r) || back.Start.Location() != time.UTC {
				t.Errorf("round trip = %+v, want %+v in UTC", back, r)
			}
		})
	}
}

// TestReportValidate lists each way a Report can be invalid; the error
// names the field.
func TestReportValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Report)
		want   string
	}{
		{"empty device", func(r *Report) { r.Device = "" }, "report device: empty"},
		{"store with slash", func(r *Report) { r.Store = "shop/1" }, `report store: "shop/1" has '/'`},
		{"store with wildcard", func(r *Report) { r.Store = "#" }, "report store"},
		{"camera with space", func(r *Report) { r.Camera = "front door" }, "report camera"},
		{"line too long", func(r *Report) { r.Line = strings.Repeat("l", 65) }, "report line: 65 characters"},
		{"line non-ASCII", func(r *Report) { r.Line = "tür" }, "report line"},
		{"no start", func(r *Report) { r.Start = time.Time{} }, "report start: not set"},
		{"no end", func(r *Report) { r.End = time.Time{} }, "report end: not set"},
		{"end before start", func(r *Report) { r.End = r.Start.Add(-time.Second) }, "report end: 2025-03-14T08:59:59Z is not after start"},
		{"empty window", func(r *Report) { r.End = r.Start }, "is not after start"},
		{"year out of range", func(r *Report) { r.Start = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "report start: year 1969"},
		{"negative in", func(r *Report) { r.In = -1 }, "report in: -1 is negative"},
		{"negative out", func(r *Report) { r.Out = -3 }, "report out: -3 is negative"},
		{"boot 0", func(r *Report) { r.Boot = 0 }, "report boot: 0"},
		{"seq 0", func(r *Report) { r.Seq = 0 }, "report seq: 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goldenReport
			tc.change(&r)
			err := r.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want an ErrInvalid containing %q", err, tc.want)
			}
			if _, err := r.Marshal(); err == nil {
				t.Error("Marshal accepted an invalid report")
			}
		})
	}
}

// TestParseReportInvalid lists inputs ParseReport must reject, with the
// expected error substring.
func TestParseReportInvalid(t *testing.T) {
	golden, err := goldenReport.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g := string(golden)
	without := func(field string) string { // the golden report minus one field
		i := strings.Index(g, `"`+field+`":`)
		j := i + strings.IndexAny(g[i:], ",}")
		if g[j] == ',' {
			return g[:i] + g[j+1:]
		}
		return strings.TrimSuffix(g[:i], ",") + "}"
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", ``, "EOF"},
		{"white space only", " \n", "EOF"},
		{"array", `[]`, "not a JSON object"},
		{"string", `"report"`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"unknown field", strings.Replace(g, `{`, `{"face":"x",`, 1), `unknown field "face"`},
		{"field in other case", strings.Replace(g, `"device"`, `"Device"`, 1), `unknown field "Device"`},
		{"duplicate field", strings.Replace(g, `{`, `{"in":1000,`, 1), `field "in" given twice`},
		{"missing device", without("device"), `missing field "device"`},
		{"missing seq", without("seq"), `missing field "seq"`},
		{"missing start", without("start"), `missing field "start"`},
		{"null field", strings.Replace(g, `"in":17`, `"in":null`, 1), "report in: null"},
		{"trailing object", g + `{}`, "data after the object"},
		{"trailing garbage", g + `x`, "data after the object"},
		{"trailing comma", strings.TrimSuffix(g, "}") + ",}", "invalid character"},
		{"truncated", g[:len(g)/2], "EOF"},
		{"float count", strings.Replace(g, `"in":17`, `"in":17.0`, 1), "report in"},
		{"exponent count", strings.Replace(g, `"out":12`, `"out":1e3`, 1), "report out"},
		{"string count", strings.Replace(g, `"in":17`, `"in":"17"`, 1), "report in"},
		{"negative count", strings.Replace(g, `"in":17`, `"in":-1`, 1), "report in: -1 is negative"},
		{"negative boot", strings.Replace(g, `"boot":3`, `"boot":-3`, 1), "report boot"},
		{"boot 0", strings.Replace(g, `"boot":3`, `"boot":0`, 1), "report boot: 0"},
		{"seq too large", strings.Replace(g, `"seq":42`, `"seq":18446744073709551616`, 1), "report seq"},
		{"number as device", strings.Replace(g, `"box-7"`, `7`, 1), "report device"},
		{"bad device", strings.Replace(g, `"box-7"`, `"box 7"`, 1), "report device"},
		{"escaped slash in store", strings.Replace(g, `"shop_042"`, `"shop\/042"`, 1), "report store"},
		{"not a time", strings.Replace(g, `"2025-03-14T09:00:00Z"`, `"yesterday"`, 1), "report start"},
		{"time without zone", strings.Replace(g, `"2025-03-14T09:00:00Z"`, `"2025-03-14T09:00:00"`, 1), "report start"},
		{"time not UTC", strings.Replace(g, `"2025-03-14T09:00:00Z"`, `"2025-03-14T10:00:00+01:00"`, 1), "is not UTC"},
		{"unix time", strings.Replace(g, `"2025-03-14T09:00:00Z"`, `1741942800`, 1), "report start"},
		{"end before start", strings.Replace(g, `"2025-03-14T09:15:00Z"`, `"2025-03-14T08:15:00Z"`, 1), "is not after start"},
		{"too long", strings.Replace(g, `{`, `{`+strings.Repeat(" ", maxReportSize), 1), "more than 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReport([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseReport(%s) = %+v, want an error", tc.in, r)
			}
			if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseReport(%s) = %v, want an ErrInvalid containing %q", tc.in, err, tc.want)
			}
		})
	}
}

// FuzzParseReport checks that ParseReport never panics and that whatever
// it accepts survives parse → marshal → parse unchanged.
func FuzzParseReport(f *testing.F) {
	golden, err := goldenReport.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte(` {"seq":1,"boot":1,"out":0,"in":0,"end":"2025-01-01T00:00:00.000000001Z","start":"2025-01-01T00:00:00Z","line":"l","camera":"c","store":"s","device":"d"} `))
	f.Add([]byte(`{"device":"d","store":"s","camera":"c","line":"l","start":"2025-01-01T00:00:00+00:00","end":"9999-12-31T23:59:59.999999999Z","in":9223372036854775807,"out":0,"boot":18446744073709551615,"seq":1}`))
	f.Add([]byte(`{"device":"\u0064","store":"s","camera":"c","line":"l","start":"2025-01-01T00:00:00Z","end":"2025-01-01T00:00:01Z","in":0,"out":0,"boot":1,"seq":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"device":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReport(data)
		if err != nil {
			return
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatalf("accepted %q but cannot marshal %+v: %v", data, r, err)
		}
		r2, err := ParseReport(b)
		if err != nil {
			t.Fatalf("cannot parse own output %s: %v", b, err)
		}
		if r2 != r {
			t.Fatalf("round trip changed the report:\n%+v\n%+v", r, r2)
		}
		b2, err := r2.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("marshal not stable: %s vs %s (%v)", b, b2, err)
		}
	})
}

func TestReportSignature(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	wire, err := goldenReport.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseReport(wire)
	if err != nil {
		t.Fatalf("ParseReport(signed): %v", err)
	}
	if err := r.Verify(pub); err != nil {
		t.Fatalf("Verify with the box's key: %v", err)
	}
	if err := r.Verify(other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify with another key = %v, want ErrBadSignature", err)
	}
	if err := goldenReport.Verify(pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("Verify of an unsigned report = %v, want ErrUnsigned", err)
	}
	for _, c := range []struct{ name, from, to string }{
		{"count changed", `"in":`, `"in":1`},
		{"seq changed", `"seq":`, `"seq":9`},
	} {
		tampered := bytes.Replace(wire, []byte(c.from), []byte(c.to), 1)
		r, err := ParseReport(tampered)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := r.Verify(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", c.name, err)
		}
	}
	if _, err := ParseReport(bytes.Replace(wire, []byte(`"sig":"`), []byte(`"sig":"x`), 1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("malformed sig: ParseReport = %v, want ErrInvalid", err)
	}
	unsigned, _ := goldenReport.Marshal()
	if _, err := ParseReport(bytes.Replace(unsigned, []byte(`}`), []byte(`,"sig":""}`), 1)); !errors.Is(err, ErrInvalid) {
		t.Errorf(`"sig":"": ParseReport = %v, want ErrInvalid`, err)
	}
}
