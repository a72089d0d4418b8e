package consent

import (
	"image"
	"net/http"
	"strings"
	"testing"

	"github.com/veil-edge/veil/track"
)

// at is a 40 px face of track id centred at (x, y) with the tracker's
// counts for it.
func at(id uint64, x, y, seen, missed, contested int, held bool) track.Covered {
	return track.Covered{ID: id, Box: image.Rect(x-20, y-20, x+20, y+20), Seen: seen, Missed: missed, Contested: contested, Held: held}
}

// TestFollow: the gate's rules for a bound track (follow.go), frame by
// frame: the bound track 1 is exempt when alone or with others far away,
// suspended while another face is near, exempt again after resumeAfter
// keyframes apart when continuity held, and unbound (with the reason)
// when it did not.
func TestFollow(t *testing.T) {
	type frame struct {
		faces  []track.Covered // the bound track's first
		exempt bool
	}
	tests := []struct {
		name   string
		frames []frame
		ended  string
	}{
		{"alone, then a face far away", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false)}, true},
			{[]track.Covered{at(1, 110, 100, 6, 0, 0, false), at(2, 400, 100, 1, 0, 0, false)}, true},
			{[]track.Covered{at(1, 120, 100, 7, 0, 0, false), at(2, 390, 100, 2, 0, 0, false)}, true},
		}, ""},
		{"missed while alone: still shown", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false)}, true},
			{[]track.Covered{at(1, 100, 100, 5, 1, 0, true)}, true},
			{[]track.Covered{at(1, 100, 100, 6, 1, 0, false)}, true},
		}, ""},
		{"a face passes close and parts cleanly: suspended, then resumed", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 300, 100, 5, 0, 0, false)}, true},
			{[]track.Covered{at(1, 100, 100, 6, 0, 0, false), at(2, 170, 100, 6, 0, 0, false)}, false}, // 30 px gap
			{[]track.Covered{at(1, 100, 100, 7, 0, 0, false), at(2, 160, 130, 7, 0, 0, false)}, false},
			{[]track.Covered{at(1, 100, 100, 7, 0, 0, false), at(2, 250, 160, 7, 0, 0, false)}, false}, // apart, no keyframe yet
			{[]track.Covered{at(1, 100, 100, 8, 0, 0, false), at(2, 280, 190, 8, 0, 0, false)}, false}, // one keyframe apart
			{[]track.Covered{at(1, 100, 100, 9, 0, 0, false), at(2, 310, 220, 9, 0, 0, false)}, true},  // two
		}, ""},
		{"paths met (contested)", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{[]track.Covered{at(1, 120, 100, 6, 0, 1, false), at(2, 140, 100, 6, 0, 1, false)}, false},
		}, reasonPathsMet},
		{"contested without ever being seen close (crossed between keyframes)", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 400, 100, 5, 0, 0, false)}, true},
			{[]track.Covered{at(1, 400, 100, 6, 0, 1, false), at(2, 100, 100, 6, 0, 1, false)}, false},
		}, reasonPathsMet},
		{"the bound face missed while another is close", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{[]track.Covered{at(1, 100, 100, 5, 1, 0, true), at(2, 160, 100, 6, 0, 0, false)}, false},
		}, reasonHiddenClose},
		{"the close face missed", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{[]track.Covered{at(1, 100, 100, 6, 0, 0, false), at(2, 165, 100, 5, 1, 0, true)}, false},
		}, reasonHiddenClose},
		{"the close face missed, then far again", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{[]track.Covered{at(1, 100, 100, 6, 0, 0, false), at(2, 300, 100, 6, 1, 0, false)}, false},
		}, reasonHiddenClose},
		{"the close face lost", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{[]track.Covered{at(1, 100, 100, 6, 0, 0, false)}, false},
		}, reasonLostClose},
		{"a face already held when it comes close", []frame{
			{[]track.Covered{at(1, 100, 100, 5, 0, 0, false), at(2, 165, 100, 5, 1, 0, true)}, false},
		}, reasonHiddenClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFollow(at(1, 100, 100, 4, 0, 0, false))
			var ended string
			for i, f := range tc.frames {
				exempt, why := fl.step(f.faces[0], f.faces)
				if exempt != f.exempt {
					t.Errorf("frame %d: exempt %v, want %v", i, exempt, f.exempt)
				}
				if why != "" {
					if i != len(tc.frames)-1 {
						t.Fatalf("frame %d: ended early: %s", i, why)
					}
					ended = why
				}
			}
			if ended != tc.ended {
				t.Errorf("ended %q, want %q", ended, tc.ended)
			}
		})
	}
}

// TestNear: boxes are near when their gap is under the larger one's size.
func TestNear(t *testing.T) {
	a := image.Rect(0, 0, 40, 40)
	for _, tc := range []struct {
		b    image.Rectangle
		want bool
	}{
		{image.Rect(79, 0, 119, 40), true},   // 39 px gap
		{image.Rect(80, 0, 120, 40), false},  // 40 px gap
		{image.Rect(20, 20, 60, 60), true},   // overlapping
		{image.Rect(0, 100, 100, 200), true}, // 60 px gap, a 100 px face
		{image.Rect(200, 200, 240, 240), false},
	} {
		if got := near(a, tc.b); got != tc.want {
			t.Errorf("near(%v, %v) = %v, want %v", a, tc.b, got, tc.want)
		}
	}
}

// TestUnbindWhenAmbiguous: through the service and its pages, a bound
// consent whose track's path meets another face's is unbound with the
// reason; a consent confirmed on the box stays on (its phone says why and
// offers Confirm, which binds it again on the spot), a relayed one ends.
func TestUnbindWhenAmbiguous(t *testing.T) {
	tests := []struct {
		name    string
		relayed bool
		want    string
	}{
		{"confirmed on the box", false, "grant,bind,unbind,bind"},
		{"relayed from head office", true, "grant,bind,unbind,expire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newRelayEnv(t)
			ph := e.phone()
			e.tracks(at(1, 200, 250, 3, 0, 0, false), at(2, 600, 250, 3, 0, 0, false))
			if tc.relayed {
				if _, err := e.rx.Handle(e.msg(e.hq, KindGrant, NewNonce(), e.token(), 0)); err != nil {
					t.Fatal(err)
				}
			} else {
				tok := e.token()
				ph.do(http.MethodGet, "/c/"+tok, nil, "en")
				ph.post("/c/"+tok, "choice", "yes", "agree", "on")
				ph.do(http.MethodGet, "/c/consent", nil, "en")
				if code, body := ph.post("/c/consent/confirm"); code != 200 {
					t.Fatalf("confirm: %d\n%s", code, body)
				}
			}
			if ex := e.tracks(at(1, 205, 250, 4, 0, 0, false), at(2, 500, 250, 4, 0, 0, false)); len(ex) != 1 {
				t.Fatalf("exempt %v, want [1]", ex)
			}
			if ex := e.tracks(at(1, 230, 250, 5, 0, 0, false), at(2, 290, 250, 5, 0, 0, false)); len(ex) != 0 {
				t.Fatalf("exempt %v with another face close, want none", ex)
			}
			if ex := e.tracks(at(1, 250, 250, 6, 0, 1, false), at(2, 260, 250, 6, 0, 1, false)); len(ex) != 0 {
				t.Fatalf("exempt %v after the paths met, want none", ex)
			}
			if ex := e.tracks(at(1, 200, 250, 9, 0, 1, false), at(2, 600, 250, 9, 0, 1, false)); len(ex) != 0 {
				t.Fatalf("exempt %v once apart again, want none: the binding ended", ex)
			}
			es := e.entries()
			if es[2].Type != EventUnbind || es[2].Reason != reasonPathsMet {
				t.Fatalf("ledger entry 3 %+v, want unbind: %s", es[2], reasonPathsMet)
			}
			if !tc.relayed {
				code, body := ph.do(http.MethodGet, "/c/consent", nil, "en")
				if code != 200 || !strings.Contains(body, unboundTexts["en"][:40]) || !strings.Contains(body, `id="confirm"`) {
					t.Fatalf("phone after the unbind: %d\n%s", code, body)
				}
				if code, body := ph.post("/c/consent/confirm"); code != 200 || !strings.Contains(body, `id="withdraw"`) {
					t.Fatalf("confirm again: %d\n%s", code, body)
				}
				if ex := e.tracks(at(1, 200, 250, 10, 0, 1, false), at(2, 600, 250, 10, 0, 1, false)); len(ex) != 1 || ex[0] != 1 {
					t.Fatalf("exempt %v after confirming again, want [1]", ex)
				}
			}
			if got := types(e.entries()); got != tc.want {
				t.Fatalf("ledger %s, want %s", got, tc.want)
			}
		})
	}
}
