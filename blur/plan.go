package blur

import "image"

// defaultReason is the reason given for a whole-frame plan that names none,
// including the zero Plan.
const defaultReason = "faces unknown"

// Plan says what to redact in one frame. Its zero value means "faces unknown"
// and redacts the whole frame, so a plan that was never filled in fails
// closed. Make one with FacesPlan or WholePlan.
type Plan struct {
	known  bool
	boxes  []image.Rectangle
	areas  []image.Rectangle
	reason string
}

// FacesPlan returns a plan for a frame whose faces are known. boxes are the
// raw face boxes in frame pixels; the Redactor adds padding. An empty list
// means the frame was searched and holds no faces, so nothing is redacted.
func FacesPlan(boxes []image.Rectangle) Plan {
	return Plan{known: true, boxes: cloneRects(boxes)}
}

// WholePlan returns a plan that redacts the whole frame because its faces are
// unknown, e.g. "detector error", "deadline missed" or "warming up". The
// reason is drawn on the frame.
func WholePlan(reason string) Plan {
	return Plan{reason: reason}
}

// Whole reports whether p redacts the whole frame.
func (p Plan) Whole() bool { return !p.known }

// Reason returns why the whole frame is redacted, or "" for a faces plan.
func (p Plan) Reason() string {
	switch {
	case p.known:
		return ""
	case p.reason == "":
		return defaultReason
	}
	return p.reason
}

// Boxes returns a copy of the raw face boxes of a faces plan.
func (p Plan) Boxes() []image.Rectangle { return cloneRects(p.boxes) }

// WithAreas returns a copy of a faces plan that also redacts areas:
// rectangles in frame pixels, such as a person's head or whole figure, that
// are redacted exactly as given. Unlike face boxes they are not padded (the
// caller pads them) and always redacted as whole rectangles, whatever the
// Shape, so that a report of the regions redacted is exact; the Style is the
// configured one, at the strength of a face as wide as the area. Areas are
// clipped to the frame; those without area or outside it are skipped. A
// whole-frame plan is returned unchanged: it redacts everything already.
func (p Plan) WithAreas(areas []image.Rectangle) Plan {
	if !p.known {
		return p
	}
	p.boxes = cloneRects(p.boxes)
	p.areas = append(cloneRects(p.areas), areas...)
	return p
}

// Areas returns a copy of the areas of a faces plan (see WithAreas).
func (p Plan) Areas() []image.Rectangle { return cloneRects(p.areas) }

// cloneRects returns a copy of rs, or nil if rs is empty.
func cloneRects(rs []image.Rectangle) []image.Rectangle {
	if len(rs) == 0 {
		return nil
	}
	return append([]image.Rectangle(nil), rs...)
}
