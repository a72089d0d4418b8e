package track

import (
	"image"
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
