package detect

import "slices"

// learnScore is the score from which a detection teaches the face sizes a
// camera sees.
const learnScore = 0.6

// learntMargin is how much wider than the learnt 90th percentile a face
// may be before it needs LargeScore.
const learntMargin = 3

// sizeBands splits the frame's height for learning face sizes; sizeKeep
// widths are kept per band (the newest), sizeNeed (in a band and the bands
// either side) are needed before they are used. 6 rather than 12 learnt
// vtest.avi's sizes in 5 s instead of 20 with the same leak rates on the
// labelled video.
const (
	sizeBands = 8
	sizeKeep  = 64
	sizeNeed  = 6
)

// faceSizes learns, per horizontal band of the frame, how wide the faces a
// fixed camera sees are: with perspective, faces far from the camera (high
// in the frame) are small. A box far wider than the faces seen at its
// height is then more likely scenery than a face.
type faceSizes struct {
	bands [sizeBands][]float32
	next  [sizeBands]int
}

func band(y float32) int { return min(sizeBands-1, max(0, int(y*sizeBands))) }

// add records a sure face of width w centred at relative height y (0 top,
// 1 bottom).
func (s *faceSizes) add(y, w float32) {
	b := band(y)
	if len(s.bands[b]) < sizeKeep {
		s.bands[b] = append(s.bands[b], w)
		return
	}
	s.bands[b][s.next[b]] = w
	s.next[b] = (s.next[b] + 1) % sizeKeep
}

// p90 is the 90th percentile width of the faces learnt at relative height
// y and in the bands either side, if there are enough of them; where there
// are not (nobody walked there yet), the largest such width of any height
// that has enough, since faces where none was seen are not expected to be
// larger than the largest seen elsewhere.
func (s *faceSizes) p90(y float32) (float32, bool) {
	if w, ok := s.near(band(y)); ok {
		return w, true
	}
	var best float32
	found := false
	for b := 0; b < sizeBands; b++ {
		if w, ok := s.near(b); ok {
			best, found = max(best, w), true
		}
	}
	return best, found
}

// near is the 90th percentile width in band b and the bands either side.
func (s *faceSizes) near(b int) (float32, bool) {
	var ws []float32
	for k := max(0, b-1); k <= min(sizeBands-1, b+1); k++ {
		ws = append(ws, s.bands[k]...)
	}
	if len(ws) < sizeNeed {
		return 0, false
	}
	slices.Sort(ws)
	return ws[len(ws)*9/10], true
}
