package box

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestWholeMinute: a camera's share of frames redacted whole is computed
// per minute, and a share above 5 % is logged with what the operator can do.
func TestWholeMinute(t *testing.T) {
	cases := []struct {
		name      string
		everyNth  int // every Nth frame whole; 0: none
		wantShare float64
		wantWarn  bool
	}{
		{"none whole", 0, 0, false},
		{"2 % whole", 50, 0.02, false},
		{"10 % whole", 10, 0.10, true},
		{"all whole", 1, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			var w wholeMinute
			start := time.Unix(1000, 0)
			// 10 fps for one minute, then the frame that closes it.
			for i := 0; i <= 600; i++ {
				whole := tc.everyNth > 0 && i%tc.everyNth == 0 && i < 600
				w.add(start.Add(time.Duration(i)*100*time.Millisecond), whole, log, 420)
			}
			if d := w.lastShare - tc.wantShare; d > 0.005 || d < -0.005 {
				t.Errorf("share %.3f, want %.3f", w.lastShare, tc.wantShare)
			}
			warned := strings.Contains(buf.String(), "not keeping up")
			if warned != tc.wantWarn {
				t.Errorf("warned=%v, want %v: %s", warned, tc.wantWarn, buf.String())
			}
			if warned && !strings.Contains(buf.String(), "min_face") {
				t.Errorf("the warning does not say what to do: %s", buf.String())
			}
		})
	}
}
