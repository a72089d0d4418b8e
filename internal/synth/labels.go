package synth

import (
	"encoding/json"
	"fmt"
	"image"
	"os"
)

// Face is one labelled face in one frame.
type Face struct {
	// ID identifies the face track; it is the same in every frame the face
	// is in.
	ID int `json:"id"`
	// Box is the tight axis-aligned bounding box of the 4 corners of the
	// rotated face box (brow to chin, ear to ear), rounded to whole pixels
	// and clipped to the frame.
	Box image.Rectangle `json:"box"`
	// Width and Height are the face box's size in pixels before rotation
	// (the face's own width: what the size bins are about).
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	// Angle is the in-plane rotation added by the generator, degrees,
	// counter-clockwise on screen. The source face may itself be tilted.
	Angle float64 `json:"angle"`
	// Quad is the rotated face box's corners (unclipped), in order
	// top-left, top-right, bottom-right, bottom-left of the unrotated face.
	Quad [4][2]float64 `json:"quad"`
	// Visible is the share of the unclipped bounding box inside the frame
	// (below 1 while a face enters or leaves through an edge).
	Visible float64 `json:"visible"`
	// Occluded is an upper bound on the share of the face box covered by
	// the context patches of faces drawn over it (nearer faces).
	Occluded float64 `json:"occluded,omitempty"`
	// Source is the faces.json id of the face image, Kind its kind
	// ("photo", "cartoon").
	Source string `json:"source"`
	Kind   string `json:"kind"`
	// Appearance changes applied.
	Flip       bool    `json:"flip,omitempty"`
	Blur       float64 `json:"blur,omitempty"`        // Gaussian sigma, px
	MotionBlur float64 `json:"motion_blur,omitempty"` // motion blur length, px
}

// Labels is the ground truth of one generated video.
type Labels struct {
	Video  string  `json:"video"` // file name of the video, next to labels.json
	Codec  string  `json:"codec"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	FPS    float64 `json:"fps"`
	Seed   int64   `json:"seed"`
	Params Params  `json:"params"`
	// Frames[i] lists the faces in frame i (0-based, in decode order).
	Frames [][]Face `json:"frames"`
}

// Frame returns the faces in frame i (nil outside the video).
func (l Labels) Frame(i int) []Face {
	if i < 0 || i >= len(l.Frames) {
		return nil
	}
	return l.Frames[i]
}

// Count returns the number of face boxes over all frames.
func (l Labels) Count() int {
	n := 0
	for _, f := range l.Frames {
		n += len(f)
	}
	return n
}

// Save writes the labels as indented JSON.
func (l Labels) Save(path string) error {
	b, err := json.MarshalIndent(l, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// LoadLabels reads labels written by Save (labels.json).
func LoadLabels(path string) (Labels, error) {
	var l Labels
	b, err := os.ReadFile(path)
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}
