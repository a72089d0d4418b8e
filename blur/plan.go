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

// cloneRects returns a copy of rs, or nil if rs is empty.
func cloneRects(rs []image.Rectangle) []image.Rectangle {
	if len(rs) == 0 {
		return nil
	}
	return append([]image.Rectangle(nil), rs...)
}
