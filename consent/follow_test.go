package consent

import (
	"image"
	"net/http"
	"strings"
	"testing"

	"github.com/veil-edge/veil/track"
)

// at is a 40 px face of track id centred at (x, y) with the tracker's
// counts for it and its rivals (track ID, Contested count).
func at(id uint64, x, y, seen, missed, contested int, held bool, rivals ...track.Rival) track.Covered {
	return track.Covered{ID: id, Box: image.Rect(x-20, y-20, x+20, y+20), Seen: seen, Missed: missed, Contested: contested, Held: held, Rivals: rivals}
}

// rival is track id, detected on seen keyframes, as a rival on the n-th
// contested keyframe.
func rival(id uint64, n, seen int) track.Rival { return track.Rival{ID: id, N: n, Seen: seen} }

type cv = []track.Covered

// TestFollow: the gate's rules for a bound track (follow.go), frame by
// frame: the bound track 1 (bound with seen 4) is exempt when alone or
// with others far away, suspended while another face is near, exempt again
// after resumeAfter keyframes apart when continuity held, and unbound
// (with the reason) when it did not.
func TestFollow(t *testing.T) {
	type frame struct {
		faces  cv // the bound track's first
		exempt bool
	}
	tests := []struct {
		name   string
		frames []frame
		ended  string
	}{
		{"alone, then a face far away", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false)}, true},
			{cv{at(1, 110, 100, 6, 0, 0, false), at(2, 400, 100, 1, 0, 0, false)}, true},
			{cv{at(1, 120, 100, 7, 0, 0, false), at(2, 390, 100, 2, 0, 0, false)}, true},
		}, ""},
		{"missed while alone: still shown", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false)}, true},
			{cv{at(1, 100, 100, 5, 1, 0, true)}, true},
			{cv{at(1, 100, 100, 6, 1, 0, false)}, true},
		}, ""},
		{"a face passes close and parts cleanly: suspended, then resumed", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 300, 100, 5, 0, 0, false)}, true},
			{cv{at(1, 100, 100, 6, 0, 0, false), at(2, 170, 100, 6, 0, 0, false)}, false}, // 30 px gap
			{cv{at(1, 100, 100, 7, 0, 0, false), at(2, 160, 130, 7, 0, 0, false)}, false},
			{cv{at(1, 100, 100, 7, 0, 0, false), at(2, 250, 160, 7, 0, 0, false)}, false}, // apart, not yet detected so
			{cv{at(1, 100, 100, 8, 0, 0, false), at(2, 280, 190, 8, 0, 0, false)}, false}, // seen apart; one keyframe
			{cv{at(1, 100, 100, 9, 0, 0, false), at(2, 310, 220, 9, 0, 0, false)}, true},  // two
		}, ""},
		{"paths met with a tracked face", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{cv{at(1, 120, 100, 6, 0, 1, false, rival(2, 1, 6)), at(2, 140, 100, 6, 0, 1, false, rival(1, 1, 6))}, false},
		}, reasonPathsMet},
		{"crossed between two keyframes, never seen close", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 400, 100, 5, 0, 0, false)}, true},
			{cv{at(1, 400, 100, 6, 0, 1, false, rival(2, 1, 6)), at(2, 100, 100, 6, 0, 1, false, rival(1, 1, 6))}, false},
		}, reasonPathsMet},
		{"a tracked rival the gate cannot see", []frame{
			{cv{at(1, 100, 100, 5, 0, 1, false, rival(9, 1, 4))}, false},
		}, reasonPathsMet},
		{"a one-off rival the tracker no longer covers", []frame{
			{cv{at(1, 100, 100, 5, 0, 1, false, rival(9, 1, 1))}, false},
			{cv{at(1, 100, 100, 6, 0, 1, false, rival(9, 1, 1))}, false},
			{cv{at(1, 100, 100, 7, 0, 1, false, rival(9, 1, 1))}, true},
		}, ""},
		{"a one-off rival the tracker no longer covers comes back", []frame{
			{cv{at(1, 100, 100, 5, 0, 1, false, rival(9, 1, 1))}, false},
			{cv{at(1, 100, 100, 6, 0, 1, false, rival(9, 1, 1)), at(9, 400, 100, 2, 1, 0, false)}, false},
		}, reasonPathsMet},
		{"a one-off copy of the face contests it, then disappears", []frame{
			{cv{at(1, 100, 100, 5, 0, 1, false, rival(3, 1, 1)), at(3, 120, 90, 1, 0, 1, false, rival(1, 1, 6))}, false},
			{cv{at(1, 100, 100, 6, 0, 1, false, rival(3, 1, 1)), at(3, 120, 90, 1, 1, 1, true, rival(1, 1, 6))}, false},
			{cv{at(1, 100, 100, 6, 0, 1, false, rival(3, 1, 1))}, false}, // gone (forgotten)
			{cv{at(1, 100, 100, 7, 0, 1, false, rival(3, 1, 1))}, false},
			{cv{at(1, 100, 100, 8, 0, 1, false, rival(3, 1, 1))}, true},
		}, ""},
		{"a one-off rival is detected again", []frame{
			{cv{at(1, 100, 100, 5, 0, 1, false, rival(3, 1, 1)), at(3, 120, 90, 1, 0, 1, false, rival(1, 1, 6))}, false},
			{cv{at(1, 100, 100, 6, 0, 1, false, rival(3, 1, 1)), at(3, 200, 90, 2, 0, 1, false, rival(1, 1, 6))}, false},
		}, reasonPathsMet},
		{"a one-off rival comes back after it disappeared", []frame{
			{cv{at(1, 100, 100, 5, 0, 1, false, rival(3, 1, 1)), at(3, 120, 90, 1, 0, 1, false, rival(1, 1, 6))}, false},
			{cv{at(1, 100, 100, 6, 0, 1, false, rival(3, 1, 1))}, false},
			{cv{at(1, 100, 100, 7, 0, 1, false, rival(3, 1, 1)), at(3, 300, 90, 2, 1, 1, false, rival(1, 1, 6))}, false},
		}, reasonPathsMet},
		{"a one-off rival comes back at a size no matching confuses with the bound face", []frame{
			{cv{at(1, 100, 100, 5, 0, 1, false, rival(3, 1, 1)), at(3, 120, 90, 1, 0, 1, false, rival(1, 1, 6))}, false},
			{cv{at(1, 100, 100, 6, 0, 1, false, rival(3, 1, 1))}, false},
			{cv{at(1, 100, 100, 7, 0, 1, false, rival(3, 1, 1)), {ID: 3, Box: image.Rect(200, 0, 400, 200), Seen: 2, Missed: 1}}, true},
			{cv{at(1, 100, 100, 8, 0, 1, false, rival(3, 1, 1)), {ID: 3, Box: image.Rect(200, 0, 400, 200), Seen: 3, Missed: 1}}, true},
		}, ""},
		{"the bound face missed while a tracked face is close", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{cv{at(1, 100, 100, 5, 1, 0, true), at(2, 160, 100, 6, 0, 0, false)}, false},
		}, reasonHiddenClose},
		{"the close face missed", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{cv{at(1, 100, 100, 6, 0, 0, false), at(2, 165, 100, 5, 1, 0, true)}, false},
		}, reasonHiddenClose},
		{"the close face missed, then far again", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{cv{at(1, 100, 100, 6, 0, 0, false), at(2, 300, 100, 6, 1, 0, false)}, false},
		}, reasonHiddenClose},
		{"the close face lost", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 170, 100, 5, 0, 0, false)}, false},
			{cv{at(1, 100, 100, 6, 0, 0, false)}, false},
		}, reasonLostClose},
		{"a tracked face already held when it comes close", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(2, 165, 100, 5, 1, 0, true)}, false},
		}, reasonHiddenClose},
		{"a one-off detection close by, then gone", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), at(4, 165, 100, 1, 0, 0, false)}, false},
			{cv{at(1, 100, 100, 6, 1, 0, false), at(4, 165, 100, 1, 1, 0, true)}, false},
			{cv{at(1, 100, 100, 7, 1, 0, false)}, false},
			{cv{at(1, 100, 100, 8, 1, 0, false)}, true},
		}, ""},
		{"a small box over the face (no face it could be confused with)", []frame{
			{cv{at(1, 100, 100, 5, 0, 0, false), {ID: 5, Box: image.Rect(95, 95, 105, 105), Seen: 9}}, true},
			{cv{at(1, 100, 100, 6, 0, 0, false), {ID: 5, Box: image.Rect(95, 95, 105, 105), Seen: 9, Missed: 3, Held: true}}, true},
			{cv{at(1, 100, 100, 7, 0, 0, false)}, true},
		}, ""},
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
			if ex := e.tracks(at(1, 250, 250, 6, 0, 1, false, rival(2, 1, 6)), at(2, 260, 250, 6, 0, 1, false, rival(1, 1, 6))); len(ex) != 0 {
				t.Fatalf("exempt %v after the paths met, want none", ex)
			}
			if ex := e.tracks(at(1, 200, 250, 9, 0, 1, false, rival(2, 1, 6)), at(2, 600, 250, 9, 0, 1, false, rival(1, 1, 6))); len(ex) != 0 {
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
				if ex := e.tracks(at(1, 200, 250, 10, 0, 1, false, rival(2, 1, 6)), at(2, 600, 250, 10, 0, 1, false, rival(1, 1, 6))); len(ex) != 1 || ex[0] != 1 {
					t.Fatalf("exempt %v after confirming again, want [1]", ex)
				}
			}
			if got := types(e.entries()); got != tc.want {
				t.Fatalf("ledger %s, want %s", got, tc.want)
			}
		})
	}
}
