package blur

import (
	"image"
	"testing"
)

func TestPlan(t *testing.T) {
	boxes := []image.Rectangle{image.Rect(1, 2, 3, 4), image.Rect(5, 6, 7, 8)}
	for _, tc := range []struct {
		name       string
		plan       Plan
		whole      bool
		reason     string
		boxesCount int
	}{
		{"zero plan fails closed", Plan{}, true, "faces unknown", 0},
		{"whole plan", WholePlan("deadline missed"), true, "deadline missed", 0},
		{"whole plan without reason", WholePlan(""), true, "faces unknown", 0},
		{"faces plan", FacesPlan(boxes), false, "", 2},
		{"faces plan, no faces", FacesPlan(nil), false, "", 0},
		{"faces plan, empty list", FacesPlan([]image.Rectangle{}), false, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.plan.Whole(); got != tc.whole {
				t.Errorf("Whole() = %v, want %v", got, tc.whole)
			}
			if got := tc.plan.Reason(); got != tc.reason {
				t.Errorf("Reason() = %q, want %q", got, tc.reason)
			}
			if got := len(tc.plan.Boxes()); got != tc.boxesCount {
				t.Errorf("len(Boxes()) = %d, want %d", got, tc.boxesCount)
			}
		})
	}
}

func TestPlanCopiesBoxes(t *testing.T) {
	boxes := []image.Rectangle{image.Rect(10, 10, 50, 50)}
	p := FacesPlan(boxes)
	boxes[0] = image.Rectangle{}
	got := p.Boxes()
	if got[0] != image.Rect(10, 10, 50, 50) {
		t.Fatalf("FacesPlan shares the caller's slice: Boxes() = %v", got)
	}
	got[0] = image.Rectangle{}
	if p.Boxes()[0] != image.Rect(10, 10, 50, 50) {
		t.Fatal("Boxes() returns the plan's own slice")
	}
}

// TestRedactNoFaces: a searched frame without faces passes unchanged.
func TestRedactNoFaces(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, messiPath)
	defer in.Close()
	r := mustRedactor(t, DefaultOptions)
	out := mustRedact(t, r, in, FacesPlan(nil))
	if out.Whole() || out.Reason() != "" || len(out.Regions()) != 0 {
		t.Errorf("Whole() %v, Reason() %q, Regions() %v; want false, \"\", none", out.Whole(), out.Reason(), out.Regions())
	}
	want, got := pixelsOf(t, in), redactedPixels(t, out)
	if string(want.b) != string(got.b) {
		t.Error("frame changed although the plan has no faces")
	}
}
