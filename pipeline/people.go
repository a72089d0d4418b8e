package pipeline

import (
	"fmt"
	"image"
	"math"
	"time"

	"github.com/veil-edge/veil/blur"
)

// Target is what a pipeline redacts. Faces are redacted in every mode; heads
// and bodies add regions derived from the people a People source tracks.
type Target string

// Targets. The zero Target means TargetFaces.
const (
	// TargetFaces redacts the faces the face detector and tracker cover.
	TargetFaces Target = "faces"
	// TargetHeads also redacts every tracked person's head (HeadOf, padded
	// like a face), for faces turned away or too small to detect.
	TargetHeads Target = "heads"
	// TargetBodies also redacts every tracked person's whole box, padded by
	// BodyPadding, for shops that want nobody recognisable.
	TargetBodies Target = "bodies"
)

// Validate reports whether t is a known target; "" counts as TargetFaces.
func (t Target) Validate() error {
	switch t {
	case "", TargetFaces, TargetHeads, TargetBodies:
		return nil
	}
	return fmt.Errorf("target: %q is not supported; allowed %s, %s, %s", string(t), TargetFaces, TargetHeads, TargetBodies)
}

// people reports whether t needs a People source.
func (t Target) people() bool { return t == TargetHeads || t == TargetBodies }

// People gives the boxes of the people tracked at a frame's stream time.
//
// PeopleAt returns the person boxes (frame pixels, feet to head) at at, and
// whether they are known for that time: known is false when the person
// detector has not succeeded recently enough to trust the boxes, and the
// frame is then redacted whole. It is called from the Run goroutine, only
// when the Target is heads or bodies, once per frame written, in order, just
// before the frame is redacted (frames redacted whole for their faces
// included). at is the frame's stream time, the same one the Analyzer was
// given for it. The pipeline does not retain boxes.
type People interface {
	PeopleAt(at time.Duration) (boxes []image.Rectangle, known bool)
}

// Proportions of the head region within a person box (feet to head), as
// fractions of the box's height and width, chosen on the hand-labelled boxes
// of vtest.avi (testdata/people/README.md). There a head is the top 12–16 %
// of the box and about a third of its width, its centre up to about a fifth
// of the width off the box's centre when an arm, a bag or a stride widens
// the box to one side. The top quarter leaves room for a detector's box
// that lags a walker or starts below the hair; the middle 70 % holds an
// off-centre head, and with the Redactor's padding (at least 0.2 of the head
// box on each side, 0.25 by default) the region spans about the box's width,
// from a little above its top to about 30 % down it.
const (
	HeadHeight = 0.25 // the head box is the top quarter of the person box
	HeadWidth  = 0.7  // and its middle 70 %
	// BodyPadding is added on each side of a person box, as a fraction of
	// its width and height, when the whole body is redacted.
	BodyPadding = 0.1
)

// HeadOf returns the head box of a person box, unpadded: its top HeadHeight,
// the middle HeadWidth of its width. The pipeline pads it as the Redactor
// pads faces (blur.Options.Padding).
func HeadOf(person image.Rectangle) image.Rectangle {
	person = person.Canon()
	w, h := float64(person.Dx()), float64(person.Dy())
	cx := float64(person.Min.X) + w/2
	return outward(cx-HeadWidth*w/2, float64(person.Min.Y), cx+HeadWidth*w/2, float64(person.Min.Y)+HeadHeight*h)
}

// personAreas returns the areas to redact for the people boxes under target
// t: heads padded by padding (the face padding), or bodies padded by
// BodyPadding. Boxes without area are skipped.
func personAreas(t Target, boxes []image.Rectangle, padding float64) []image.Rectangle {
	var out []image.Rectangle
	for _, b := range boxes {
		b = b.Canon()
		if b.Empty() {
			continue
		}
		switch t {
		case TargetHeads:
			out = append(out, pad(HeadOf(b), padding))
		case TargetBodies:
			out = append(out, pad(b, BodyPadding))
		}
	}
	return out
}

// pad grows r by p of its width and height on each side, rounding outward.
func pad(r image.Rectangle, p float64) image.Rectangle {
	px, py := p*float64(r.Dx()), p*float64(r.Dy())
	return outward(float64(r.Min.X)-px, float64(r.Min.Y)-py, float64(r.Max.X)+px, float64(r.Max.Y)+py)
}

// outward returns the smallest integer rectangle holding the given one,
// saturated to ±2^40 so that no conversion overflows.
func outward(x0, y0, x1, y1 float64) image.Rectangle {
	const lim = 1 << 40
	c := func(v float64) int { return int(math.Max(-lim, math.Min(lim, v))) }
	return image.Rect(c(math.Floor(x0)), c(math.Floor(y0)), c(math.Ceil(x1)), c(math.Ceil(y1)))
}

// clipAreas returns the areas as the Redactor redacts them: clipped to a
// frame of the given size, those left without area dropped.
func clipAreas(areas []image.Rectangle, size image.Point) []image.Rectangle {
	var out []image.Rectangle
	for _, a := range areas {
		if a = a.Canon().Intersect(image.Rectangle{Max: size}); !a.Empty() {
			out = append(out, a)
		}
	}
	return out
}

// Reasons a frame is redacted whole under TargetHeads or TargetBodies.
const (
	reasonNoPeople      = "no people detector"
	reasonPeopleUnknown = "people not known"
)

// withPeople adds the people regions of the frame at t to a faces plan, or
// returns a whole-frame plan when they are not known. A whole-frame plan
// stays whole. Under TargetFaces it returns plan unchanged.
func (a *assembler) withPeople(plan blur.Plan, t time.Duration) blur.Plan {
	if !a.target.people() {
		return plan
	}
	if a.p.People == nil {
		return whole(plan, reasonNoPeople)
	}
	boxes, known := a.p.People.PeopleAt(t)
	if !known {
		return whole(plan, reasonPeopleUnknown)
	}
	return plan.WithAreas(personAreas(a.target, boxes, a.p.Redactor.Options().Padding))
}

// whole is plan if it redacts the whole frame already (keeping its reason),
// else a whole-frame plan for reason.
func whole(plan blur.Plan, reason string) blur.Plan {
	if plan.Whole() {
		return plan
	}
	return blur.WholePlan(reason)
}
