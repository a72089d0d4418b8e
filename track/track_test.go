package track

import (
	"image"
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

func contains(outer []image.Rectangle, r image.Rectangle) bool {
	for _, o := range outer {
		if r.In(o) {
			return true
		}
	}
	return false
}

// TestCoverBetweenKeyframes: a face moving steadily and detected on keyframes
// 0 and 200 ms is covered on every frame in between; a face first detected
// at 200 ms is also covered on the frames before it; a face lost at 200 ms is
// covered until the hold expires, then dropped.
func TestCoverBetweenKeyframes(t *testing.T) {
	tr := New(Options{Hold: 400 * ms, Growth: 0.5, MatchIoU: 0.2})
	moving := func(at time.Duration) image.Rectangle { // 100 px/s to the right
		x := 100 + int(at.Seconds()*100)
		return image.Rect(x, 100, x+40, 150)
	}
	lost := image.Rect(400, 300, 430, 340)
	born := image.Rect(600, 50, 640, 100)

	tr.Update(0, dets(moving(0), lost))
	tr.Update(200*ms, dets(moving(200*ms), born))
	for at := time.Duration(0); at <= 200*ms; at += 40 * ms {
		c := tr.Cover(at)
		if !contains(c, moving(at)) {
			t.Errorf("t=%v: moving face %v not covered by %v", at, moving(at), c)
		}
		if !contains(c, lost) {
			t.Errorf("t=%v: lost face %v not held", at, lost)
		}
		if at >= 120*ms && !contains(c, born) {
			t.Errorf("t=%v: face first seen at 200ms not covered backward", at)
		}
	}
	ids := map[uint64]bool{}
	for _, x := range tr.Tracks() {
		ids[x.ID] = true
	}
	if len(ids) != 3 {
		t.Errorf("tracks = %d, want 3 (moving matched, lost held, born new)", len(ids))
	}
	// Past the hold, the lost face is gone.
	tr.Update(600*ms, dets(moving(600*ms), born))
	if contains(tr.Cover(600*ms), lost) {
		t.Error("lost face still covered after its hold expired")
	}
}

// TestGrowthWithUncertainty: the box held for a missing face grows with time.
func TestGrowthWithUncertainty(t *testing.T) {
	tr := New(Options{Hold: time.Second, Growth: 0.5, MatchIoU: 0.2})
	f := image.Rect(100, 100, 140, 140)
	tr.Update(0, dets(f))
	tr.Update(100*ms, nil)
	a := tr.Cover(100 * ms)[0]
	b := tr.Cover(500 * ms)[0]
	if !(b.Dx() > a.Dx() && a.Dx() > f.Dx()) {
		t.Errorf("widths %d, %d, %d: want growing with time unseen", f.Dx(), a.Dx(), b.Dx())
	}
}

// TestMatchByDistance: a small fast face that no longer overlaps its last box
// keeps its track (ids are positions over time).
func TestMatchByDistance(t *testing.T) {
	tr := New(DefaultOptions)
	tr.Update(0, dets(image.Rect(0, 0, 16, 16)))
	tr.Update(100*ms, dets(image.Rect(14, 2, 30, 18)))
	if n := len(tr.Tracks()); n != 1 {
		t.Fatalf("tracks = %d, want 1", n)
	}
}

// TestTentativeHold: a track seen once is held for TentativeHold only; a
// confirmed one for Hold.
func TestTentativeHold(t *testing.T) {
	tr := New(Options{Hold: time.Second, TentativeHold: 200 * ms, Growth: 0.25, MatchIoU: 0.2})
	once := image.Rect(500, 500, 520, 520)
	twice := image.Rect(100, 100, 140, 140)
	tr.Update(0, dets(twice))
	tr.Update(100*ms, dets(twice, once))
	// Until a keyframe misses it, a track seen on the newest keyframe stays
	// covered, however long the next keyframe takes (the live schedule
	// shows frames after the newest keyframe before the next is decided).
	if !contains(tr.Cover(500*ms), once) {
		t.Error("tentative track seen on the newest keyframe not covered 400 ms later, before any keyframe missed it")
	}
	tr.Update(400*ms, dets(twice))
	at := 500 * ms
	c := tr.Cover(at)
	if contains(c, twice) == false {
		t.Error("confirmed track not held within Hold")
	}
	for _, r := range c {
		if r.Overlaps(once) {
			t.Error("tentative track held past TentativeHold")
		}
	}
	if !contains(tr.Cover(250*ms), once) {
		t.Error("tentative track not held within TentativeHold")
	}
}

// dets wraps boxes as detections with a full score.
func dets(boxes ...image.Rectangle) []Detection {
	out := make([]Detection, len(boxes))
	for i, b := range boxes {
		out[i] = Detection{Box: b, Score: 1}
	}
	return out
}

// TestConfirmation: a strong detection is covered at once; a weak one only
// from its ConfirmObs-th keyframe, and then back to its first detection.
func TestConfirmation(t *testing.T) {
	o := Options{Hold: time.Second, MatchIoU: 0.2, ConfirmScore: 0.5, ConfirmObs: 3}
	strong := image.Rect(100, 100, 140, 140)
	weak := image.Rect(400, 100, 440, 140)
	tr := New(o)
	covered := func(at time.Duration, r image.Rectangle) bool {
		for _, c := range tr.Cover(at) {
			if c.Overlaps(r) {
				return true
			}
		}
		return false
	}
	step := []Detection{{Box: strong, Score: 0.9}, {Box: weak, Score: 0.35}}
	tr.Update(0, step)
	if !covered(0, strong) {
		t.Error("strong detection not covered on its first keyframe")
	}
	if covered(0, weak) {
		t.Error("weak detection covered on its first keyframe")
	}
	if n := tr.Faces(); n != 1 {
		t.Errorf("Faces() = %d after the first keyframe, want 1 (the strong one)", n)
	}
	tr.Update(100*ms, step)
	if covered(100*ms, weak) {
		t.Error("weak detection covered on its second keyframe (ConfirmObs 3)")
	}
	tr.Update(200*ms, step)
	for _, at := range []time.Duration{0, 50 * ms, 100 * ms, 200 * ms} {
		if !covered(at, weak) {
			t.Errorf("confirmed weak track not covered at %v", at)
		}
	}
	if n := tr.Faces(); n != 2 {
		t.Errorf("Faces() = %d after confirmation, want 2", n)
	}

	never := New(Options{Hold: time.Second, MatchIoU: 0.2, ConfirmScore: 0.5})
	for i := range 5 {
		never.Update(time.Duration(i)*100*ms, []Detection{{Box: weak, Score: 0.35}})
	}
	if n := len(never.Cover(400 * ms)); n != 0 {
		t.Errorf("ConfirmObs 0: %d weak-only boxes covered, want 0", n)
	}
	if n := never.Faces(); n != 0 {
		t.Errorf("ConfirmObs 0: Faces() = %d, want 0", n)
	}
}

// sq is a 40 px face box centred at (x, y).
func sq(x, y int) image.Rectangle { return image.Rect(x-20, y-20, x+20, y+20) }

// TestContinuity: what each track's counts say (Covered's Seen, Missed,
// Contested, Rivals, Held) after two faces move past each other in different ways,
// keyframes every 100 ms. Face a is the first track; its counts are read
// after the last keyframe.
func TestContinuity(t *testing.T) {
	type step []image.Rectangle // one keyframe's detections; a's first when present
	path := func(n int, a, b func(k int) image.Rectangle) []step {
		var s []step
		for k := range n {
			s = append(s, step{a(k), b(k)})
		}
		return s
	}
	tests := []struct {
		name      string
		steps     []step
		contested bool
		seen      int
		missed    int
		held      bool
		newB      bool // b's track contested from its first keyframe
	}{
		{"apart", path(8, func(k int) image.Rectangle { return sq(100+10*k, 100) }, func(int) image.Rectangle { return sq(500, 100) }),
			false, 8, 0, false, false},
		{"pass three sizes apart", path(10, func(k int) image.Rectangle { return sq(100+30*k, 100) }, func(k int) image.Rectangle { return sq(400-30*k, 220) }),
			false, 10, 0, false, false},
		{"paths meet", path(10, func(k int) image.Rectangle { return sq(100+30*k, 200) }, func(k int) image.Rectangle { return sq(400-30*k, 200) }),
			true, 10, 0, false, false},
		// Speeding up (the tracker follows by velocity), 2.5 sizes apart
		// on keyframe 3 and 3.5 past each other on keyframe 4: never seen
		// close, but their paths in between touch.
		{"cross between two keyframes, a size apart sideways", path(6, func(k int) image.Rectangle { return sq(100+15*k*(k+1), 200) }, func(k int) image.Rectangle { return sq(560-15*k*(k+1), 240) }),
			true, 6, 0, false, false},
		{"cross between two keyframes, three sizes apart sideways", path(6, func(k int) image.Rectangle { return sq(100+15*k*(k+1), 200) }, func(k int) image.Rectangle { return sq(560-15*k*(k+1), 320) }),
			false, 6, 0, false, false},
		{"overtake close", path(12, func(k int) image.Rectangle { return sq(100+20*k, 200) }, func(k int) image.Rectangle { return sq(180+5*k, 230) }),
			true, 12, 0, false, false},
		{"standing side by side, a quarter size apart", path(8, func(int) image.Rectangle { return sq(100, 100) }, func(int) image.Rectangle { return sq(150, 100) }),
			false, 8, 0, false, false},
		{"standing side by side, overlapping: each matches its own better", path(8, func(int) image.Rectangle { return sq(100, 100) }, func(int) image.Rectangle { return sq(130, 100) }),
			false, 8, 0, false, false},
		{"missed on the last keyframe", []step{{sq(100, 100)}, {sq(110, 100)}, {sq(120, 100)}, {}},
			false, 3, 1, true, false},
		{"missed, then seen again", []step{{sq(100, 100)}, {sq(110, 100)}, {}, {sq(130, 100)}},
			false, 3, 1, false, false},
		{"another face appears beside it", []step{{sq(100, 100)}, {sq(100, 100)}, {sq(100, 100), sq(135, 100)}},
			true, 3, 0, false, true},
		{"another face appears far away", []step{{sq(100, 100)}, {sq(100, 100)}, {sq(100, 100), sq(400, 100)}},
			false, 3, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(DefaultOptions)
			var at time.Duration
			for _, s := range tc.steps {
				tr.Update(at, dets(s...))
				at += 100 * ms
			}
			cs := tr.CoverTracks(at - 100*ms)
			var a, b *Covered
			for i := range cs {
				switch cs[i].ID {
				case 1:
					a = &cs[i]
				case 2:
					b = &cs[i]
				}
			}
			if a == nil {
				t.Fatalf("face a's track is gone: %+v", cs)
			}
			if (a.Contested > 0) != tc.contested || a.Seen != tc.seen || a.Missed != tc.missed || a.Held != tc.held {
				t.Errorf("a: contested %d, seen %d, missed %d, held %v; want contested %v, seen %d, missed %d, held %v",
					a.Contested, a.Seen, a.Missed, a.Held, tc.contested, tc.seen, tc.missed, tc.held)
			}
			if tc.contested && !slices.ContainsFunc(a.Rivals, func(r Rival) bool { return r.ID == 2 && r.N == a.Contested && r.Seen > 0 }) {
				t.Errorf("a's rivals %v: want b's track (2) on its latest contested keyframe (%d)", a.Rivals, a.Contested)
			}
			if tc.newB && (b == nil || b.Contested != 1) {
				t.Errorf("b's track %+v: want contested from its first keyframe", b)
			}
			if len(tr.Tracks()) != max(1, len(tc.steps[len(tc.steps)-1])) && !tc.held {
				t.Errorf("%d tracks, want one per face (no track lost or split)", len(tr.Tracks()))
			}
		})
	}
}
