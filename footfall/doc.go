// Package footfall counts people crossing directed lines in a camera's view
// and sums the crossings into time windows.
//
// It follows people, not faces: people walking away from a camera show no
// face. A PersonDetector finds people in each frame, a tracker links them
// into tracks by their foot point (the bottom-centre of the body, where the
// person stands), and every Line counts a track once each time its foot
// point passes from clearly one side of the line to clearly the other, within
// the line's extent. The band around the line (hysteresis) keeps jitter and
// loitering on the line from counting twice. A new side takes two clear
// observations in a row.
//
// What the detector finds (PersonDetector.Finds) picks the tracker:
//
//   - FindsBlobs (Motion: MOG2 background subtraction into moving blobs):
//     blobs are split and filtered into people by a perspective learnt from
//     the people followed (perspective), and linked by the blob tracker
//     (tracker.go). When two people merge into one blob, the feet of the one
//     behind are estimated, and estimates alone move nobody across a line
//     unless there are five in a row.
//   - FindsPeople (a person detector network, one scored box per person):
//     the people tracker (people.go, PeopleOptions) predicts each track
//     with a Kalman filter (kalman.go) to the frame's time, matches
//     confident detections and then doubtful ones by optimal assignment
//     (assign.go), confirms new tracks after a few hits and lets confirmed
//     ones coast through short occlusions. Only matched detections move a
//     track across a line.
//
// Direction: a Line runs from A to B in image pixels (y grows downward).
// "In" is a crossing from the left side of A→B, as seen on screen, to the
// right side; "out" is the reverse. For a line from (0,100) to (100,100) the
// left side is above it, so walking down the screen across it is "in".
//
// Nothing here keeps pixels: detectors read a frame during the call and
// return boxes; tracks hold foot points and box sizes; windows hold counts.
package footfall
