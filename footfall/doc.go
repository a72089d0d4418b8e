// Package footfall counts people crossing directed lines in a camera's view
// and sums the crossings into time windows.
//
// It follows people, not faces: people walking away from a camera show no
// face. A PersonDetector finds moving people in each frame (Motion: MOG2
// background subtraction into person-sized blobs), a Tracker links them
// into tracks by their foot point (the bottom-centre of the body, where the
// person stands), and every Line counts a track once each time its foot
// point passes from clearly one side of the line to clearly the other, within
// the line's extent. The band around the line (hysteresis) keeps jitter and
// loitering on the line from counting twice. A new side takes two clear
// observations in a row; when two people merge into one blob, the feet of
// the one behind are estimated, and estimates alone move nobody across a
// line unless there are five in a row.
//
// Direction: a Line runs from A to B in image pixels (y grows downward).
// "In" is a crossing from the left side of A→B, as seen on screen, to the
// right side; "out" is the reverse. For a line from (0,100) to (100,100) the
// left side is above it, so walking down the screen across it is "in".
//
// Nothing here keeps pixels: detectors read a frame during the call and
// return boxes; tracks hold foot points and box sizes; windows hold counts.
package footfall
