package detect

import (
	"image"
	"sort"
)

// iou is the intersection over union of two rectangles.
func iou(a, b Rect) float32 {
	ix := min(a.X1, b.X1) - max(a.X0, b.X0)
	iy := min(a.Y1, b.Y1) - max(a.Y0, b.Y0)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	union := a.W()*a.H() + b.W()*b.H() - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// rectOf is a pixel rectangle as a Rect.
func rectOf(r image.Rectangle) Rect {
	return Rect{float32(r.Min.X), float32(r.Min.Y), float32(r.Max.X), float32(r.Max.Y)}
}

// WeightedNMS merges overlapping candidates: the highest-scoring candidate
// absorbs every remaining one whose IoU with it exceeds iouThreshold, and the
// merged box is the score-weighted mean of the group (as MediaPipe blends
// BlazeFace anchors), keeping the group's best score. The input is not
// modified; the result is sorted by score, best first.
func WeightedNMS(cands []Candidate, iouThreshold float32) []Candidate {
	if len(cands) == 0 {
		return nil
	}
	order := make([]Candidate, len(cands))
	copy(order, cands)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Score > order[j].Score })
	used := make([]bool, len(order))
	var out []Candidate
	for i, best := range order {
		if used[i] {
			continue
		}
		var sx0, sy0, sx1, sy1, sr, sw float32
		for j := i; j < len(order); j++ {
			if used[j] || iou(best.Box, order[j].Box) <= iouThreshold && j != i {
				continue
			}
			used[j] = true
			w := order[j].Score
			sx0 += order[j].Box.X0 * w
			sy0 += order[j].Box.Y0 * w
			sx1 += order[j].Box.X1 * w
			sy1 += order[j].Box.Y1 * w
			sr += order[j].Roll * w
			sw += w
		}
		if sw <= 0 {
			out = append(out, best)
			continue
		}
		out = append(out, Candidate{Box: Rect{sx0 / sw, sy0 / sw, sx1 / sw, sy1 / sw}, Score: best.Score, Roll: sr / sw})
	}
	return out
}
