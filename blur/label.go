package blur

import (
	"image"
	"image/color"
	"math"
	"strings"

	"gocv.io/x/gocv"
)

const (
	labelFont      = gocv.FontHersheySimplex
	labelMaxReason = 48 // characters of the reason drawn
)

// label is where and how the whole-frame label is drawn.
type label struct {
	text      string
	org       image.Point // baseline start, as PutText wants
	scale     float64
	thickness int
	// bounds contains every pixel the label may touch.
	bounds image.Rectangle
}

// labelText returns "REDACTED: <reason>" with the reason cut short and
// reduced to the printable ASCII the Hershey fonts can draw.
func labelText(reason string) string {
	var b strings.Builder
	b.WriteString("REDACTED: ")
	n := 0
	for _, c := range strings.TrimSpace(reason) {
		if n == labelMaxReason {
			b.WriteString("...")
			break
		}
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteRune(c)
		n++
	}
	return b.String()
}

// layoutLabel places the label for reason at the top left of a frame of the
// given size, scaled with the frame height and shrunk to fit its width.
func layoutLabel(size image.Point, reason string) label {
	l := label{text: labelText(reason)}
	margin := max(2, size.Y/40)
	l.scale = math.Min(math.Max(float64(size.Y)/720, 0.35), 3)
	l.thickness = max(1, int(math.Round(l.scale*2.5)))
	text, base := gocv.GetTextSizeWithBaseline(l.text, labelFont, l.scale, l.thickness)
	if avail := size.X - 2*margin; text.X > avail && avail > 0 {
		l.scale *= float64(avail) / float64(text.X)
		l.thickness = max(1, int(math.Round(l.scale*2.5)))
		text, base = gocv.GetTextSizeWithBaseline(l.text, labelFont, l.scale, l.thickness)
	}
	l.org = image.Pt(margin, margin+text.Y)
	slack := l.thickness + 2 // stroke width and anti-aliasing
	l.bounds = image.Rect(margin, margin, margin+text.X, margin+text.Y+base).Inset(-slack)
	return l
}

// drawWhole fills frame with fill (the BGR form of c) and draws the label
// for reason in a colour that contrasts with c.
func drawWhole(frame *gocv.Mat, fill gocv.Scalar, c color.RGBA, reason string) {
	frame.SetTo(fill)
	l := layoutLabel(image.Pt(frame.Cols(), frame.Rows()), reason)
	gocv.PutTextWithParams(frame, l.text, l.org, labelFont, l.scale, contrast(c), l.thickness, gocv.LineAA, false)
}

// contrast returns white on dark colours and black on light ones.
func contrast(c color.RGBA) color.RGBA {
	if 299*int(c.R)+587*int(c.G)+114*int(c.B) < 128*1000 {
		return color.RGBA{R: 255, G: 255, B: 255, A: 255}
	}
	return color.RGBA{A: 255}
}
