package release

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		ok   bool
	}{
		{"0.0.0", Version{}, true},
		{"1.2.3", Version{1, 2, 3}, true},
		{"10.20.30", Version{10, 20, 30}, true},
		{"18446744073709551615.0.1", Version{18446744073709551615, 0, 1}, true},
		{"", Version{}, false},
		{"1.2", Version{}, false},
		{"1.2.3.4", Version{}, false},
		{"1..3", Version{}, false},
		{"01.2.3", Version{}, false},
		{"1.2.03", Version{}, false},
		{"v1.2.3", Version{}, false},
		{"1.2.3-rc1", Version{}, false},
		{"1.2.+3", Version{}, false},
		{"1.2.-3", Version{}, false},
		{" 1.2.3", Version{}, false},
		{"18446744073709551616.0.0", Version{}, false},
	} {
		got, err := ParseVersion(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("ParseVersion(%q).String() = %q", tc.in, got.String())
		}
	}
}

func TestVersionCompare(t *testing.T) {
	order := []string{"0.0.0", "0.0.1", "0.1.0", "0.1.9", "0.2.0", "1.0.0", "1.0.10", "1.9.0", "1.10.0", "2.0.0"}
	for i, a := range order {
		for j, b := range order {
			va, _ := ParseVersion(a)
			vb, _ := ParseVersion(b)
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := va.Compare(vb); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", a, b, got, want)
			}
			if got := va.Less(vb); got != (want < 0) {
				t.Errorf("%s.Less(%s) = %v", a, b, got)
			}
		}
	}
}
