// Package synth generates labelled test video for face redaction: real
// faces from images shipped by Debian packages (hand-labelled in
// testdata/faces/faces.json) are pasted with feathered context onto a CCTV
// background video, moving, scaling, rotating and blurring smoothly, and
// every frame's face boxes are known exactly. Params.Walks scripts the scene
// instead (script.go): chosen faces on chosen paths, e.g. two people
// crossing.
package synth

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gocv.io/x/gocv"
)

// DefaultBackground is vtest.avi from opencv-doc: 768x576, 10 fps, 795
// frames of pedestrians seen from above. Its own pedestrians' faces are
// under 10 px wide and are not labelled.
const DefaultBackground = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

// Codecs Generate can write.
const (
	// CodecMJPEG is Motion-JPEG in AVI, encoded at Params.Quality by
	// gocv.IMEncode and muxed by this package (default). At quality 95 a
	// decoded frame is 41.6 dB PSNR or better from the frame that was
	// rendered (TestCodecFidelity); OpenCV's own MJPG writer, whose quality
	// gocv v0.31 cannot set, gives about 39 dB.
	CodecMJPEG = "mjpeg"
	// CodecHFYU is lossless HuffYUV in AVI written by OpenCV's ffmpeg
	// backend: decoded frames are bit-exact, files are ~7x larger.
	CodecHFYU = "hfyu"
)

// Params controls Generate. Zero values take the defaults noted.
type Params struct {
	Seed       int64    `json:"seed"`
	Frames     int      `json:"frames"`      // default 300
	Background string   `json:"background"`  // default DefaultBackground; looped when short
	Width      int      `json:"width"`       // output size; 0 = background size. Other
	Height     int      `json:"height"`      // sizes (e.g. 1280x720) scale+crop the background
	FPS        float64  `json:"fps"`         // default: the background's fps
	Faces      int      `json:"faces"`       // faces on screen at once, default 6
	MinWidth   float64  `json:"min_width"`   // face width range, default 12..160 px
	MaxWidth   float64  `json:"max_width"`   //
	MaxAngle   float64  `json:"max_angle"`   // in-plane rotation limit, default 45 degrees
	MaxIoU     float64  `json:"max_iou"`     // face boxes overlap at most this, default 0.3
	MaxUpscale float64  `json:"max_upscale"` // a source face is enlarged at most this, default 2
	Kinds      []string `json:"kinds"`       // source kinds to use, default all ("photo", "cartoon")
	FacesJSON  string   `json:"faces_json"`  // default DefaultFacesJSON()
	Codec      string   `json:"codec"`       // CodecMJPEG (default) or CodecHFYU
	Quality    int      `json:"quality"`     // JPEG quality for CodecMJPEG, default 95
	// Walks, if set, script the scene: these faces and no others (Faces
	// and the random layout are not used).
	Walks []Walk `json:"walks,omitempty"`
}

func (p *Params) fill() error {
	if p.Frames == 0 {
		p.Frames = 300
	}
	if p.Background == "" {
		p.Background = DefaultBackground
	}
	if p.Faces == 0 {
		p.Faces = 6
	}
	if p.MinWidth == 0 {
		p.MinWidth = 12
	}
	if p.MaxWidth == 0 {
		p.MaxWidth = 160
	}
	if p.MaxAngle == 0 {
		p.MaxAngle = 45
	}
	if p.MaxIoU == 0 {
		p.MaxIoU = 0.3
	}
	if p.MaxUpscale == 0 {
		p.MaxUpscale = 2
	}
	if p.FacesJSON == "" {
		p.FacesJSON = DefaultFacesJSON()
	}
	if p.Codec == "" {
		p.Codec = CodecMJPEG
	}
	p.Codec = strings.ToLower(p.Codec)
	if p.Quality == 0 {
		p.Quality = 95
	}
	switch {
	case p.Frames < 1:
		return fmt.Errorf("synth: frames %d < 1", p.Frames)
	case p.Faces < 0:
		return fmt.Errorf("synth: faces %d < 0", p.Faces)
	case p.MinWidth < 4 || p.MaxWidth < p.MinWidth:
		return fmt.Errorf("synth: face width range %v..%v", p.MinWidth, p.MaxWidth)
	case p.MaxAngle < 0 || p.MaxAngle > 90:
		return fmt.Errorf("synth: max angle %v outside 0..90", p.MaxAngle)
	case (p.Width == 0) != (p.Height == 0) || p.Width < 0 || p.Height < 0:
		return fmt.Errorf("synth: size %dx%d", p.Width, p.Height)
	case p.Codec != CodecMJPEG && p.Codec != CodecHFYU:
		return fmt.Errorf("synth: codec %q, want %q or %q", p.Codec, CodecMJPEG, CodecHFYU)
	case p.Quality < 1 || p.Quality > 100:
		return fmt.Errorf("synth: quality %d outside 1..100", p.Quality)
	}
	return nil
}

// LabelsPath returns where Generate writes the labels of video out:
// labels.json in the same directory.
func LabelsPath(out string) string { return filepath.Join(filepath.Dir(out), "labels.json") }

// Generate writes a labelled video to out (an .avi) and its labels to
// LabelsPath(out), and returns the labels. The same Params (with the same
// installed packages) give the same video and labels.
func Generate(ctx context.Context, p Params, out string) (Labels, error) {
	if err := p.fill(); err != nil {
		return Labels{}, err
	}
	lib, err := LoadLibrary(p.FacesJSON, p.Kinds...)
	if err != nil {
		return Labels{}, err
	}
	defer lib.Close()

	bg, err := newBackground(p.Background, p.Width, p.Height)
	if err != nil {
		return Labels{}, err
	}
	defer bg.close()
	fw, fh := bg.width, bg.height
	if p.FPS == 0 {
		p.FPS = bg.fps
	}
	if p.FPS <= 0 || math.IsNaN(p.FPS) {
		p.FPS = 10
	}

	rng := rand.New(rand.NewPCG(uint64(p.Seed), 0x7665696c))
	pl := &planner{p: p, lib: lib, rng: rng, fw: float64(fw), fh: float64(fh), fps: p.FPS}
	if len(p.Walks) > 0 {
		if err := pl.scripted(); err != nil {
			return Labels{}, err
		}
	} else {
		pl.plan()
	}

	r := newRenderer(lib, fw, fh, rng)
	defer r.close()
	for _, k := range pl.tracks {
		r.prepare(k)
	}

	var w frameWriter
	switch p.Codec {
	case CodecMJPEG:
		w, err = newMJPEGAVI(out, fw, fh, p.FPS, p.Quality)
	case CodecHFYU:
		w, err = newCVWriter(out, "HFYU", fw, fh, p.FPS)
	}
	if err != nil {
		return Labels{}, err
	}

	labels := Labels{Video: filepath.Base(out), Codec: p.Codec, Width: fw, Height: fh, FPS: p.FPS,
		Seed: p.Seed, Params: p, Frames: make([][]Face, p.Frames)}
	frame := gocv.NewMat()
	defer frame.Close()
	fail := func(err error) (Labels, error) {
		w.Close()
		os.Remove(out)
		return Labels{}, err
	}
	for t := 0; t < p.Frames; t++ {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if err := bg.read(&frame); err != nil {
			return fail(err)
		}
		var on []*track
		for _, k := range pl.tracks {
			if k.active(t) {
				on = append(on, k)
			}
		}
		// Far (small) faces first, near faces drawn over them.
		sort.SliceStable(on, func(i, j int) bool { return on[i].g[t-on[i].start].w < on[j].g[t-on[j].start].w })
		faces := make([]Face, 0, len(on))
		for i, k := range on {
			g := k.g[t-k.start]
			sigma, mlen := r.draw(&frame, k, t)
			occ := 0.0
			for _, o := range on[i+1:] {
				occ += coverage(g.face, o.g[t-o.start].patch)
			}
			box := g.face.rect().Intersect(image.Rect(0, 0, fw, fh))
			if box.Empty() {
				continue
			}
			faces = append(faces, Face{ID: k.id, Box: box, Width: round2(g.w), Height: round2(g.w * k.aspect),
				Angle: round2(g.angle), Quad: roundQuad(g.quad), Visible: round2(g.visible),
				Occluded: round2(math.Min(1, occ)), Source: lib.Sources[k.src].ID, Kind: lib.Sources[k.src].Kind,
				Flip: k.flip, Blur: round2(sigma), MotionBlur: round2(mlen)})
		}
		sort.Slice(faces, func(i, j int) bool { return faces[i].ID < faces[j].ID })
		labels.Frames[t] = faces
		if err := w.Write(frame); err != nil {
			return fail(err)
		}
	}
	if err := w.Close(); err != nil {
		os.Remove(out)
		return Labels{}, err
	}
	if err := labels.Save(LabelsPath(out)); err != nil {
		return Labels{}, err
	}
	return labels, nil
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func roundQuad(q [4][2]float64) [4][2]float64 {
	for i := range q {
		q[i][0], q[i][1] = round2(q[i][0]), round2(q[i][1])
	}
	return q
}

type frameWriter interface {
	Write(gocv.Mat) error
	Close() error
}

// cvWriter writes through OpenCV's VideoWriter (ffmpeg backend).
type cvWriter struct{ vw *gocv.VideoWriter }

func newCVWriter(path, fourcc string, w, h int, fps float64) (*cvWriter, error) {
	vw, err := gocv.VideoWriterFile(path, fourcc, fps, w, h, true)
	if err != nil {
		return nil, err
	}
	if !vw.IsOpened() {
		vw.Close()
		return nil, fmt.Errorf("synth: OpenCV cannot write %s as %s", path, fourcc)
	}
	return &cvWriter{vw}, nil
}

func (c *cvWriter) Write(m gocv.Mat) error { return c.vw.Write(m) }
func (c *cvWriter) Close() error           { return c.vw.Close() }

// background reads the background video, looping it, scaled and
// centre-cropped to the output size.
type background struct {
	path          string
	vc            *gocv.VideoCapture
	width, height int
	srcW, srcH    int
	fps           float64
	raw           gocv.Mat
	scaled        gocv.Mat
	read0         bool
}

func newBackground(path string, w, h int) (*background, error) {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return nil, fmt.Errorf("synth: open background %s: %w", path, err)
	}
	b := &background{path: path, vc: vc, fps: vc.Get(gocv.VideoCaptureFPS),
		srcW: int(vc.Get(gocv.VideoCaptureFrameWidth)), srcH: int(vc.Get(gocv.VideoCaptureFrameHeight)),
		raw: gocv.NewMat(), scaled: gocv.NewMat()}
	if b.srcW <= 0 || b.srcH <= 0 {
		b.close()
		return nil, fmt.Errorf("synth: background %s has no frames", path)
	}
	b.width, b.height = w, h
	if w == 0 {
		b.width, b.height = b.srcW, b.srcH
	}
	return b, nil
}

func (b *background) read(dst *gocv.Mat) error {
	if !b.vc.Read(&b.raw) || b.raw.Empty() {
		if !b.read0 {
			return fmt.Errorf("synth: background %s: no frame", b.path)
		}
		// Loop.
		b.vc.Close()
		vc, err := gocv.VideoCaptureFile(b.path)
		if err != nil {
			return err
		}
		b.vc = vc
		if !b.vc.Read(&b.raw) || b.raw.Empty() {
			return fmt.Errorf("synth: background %s: cannot loop", b.path)
		}
	}
	b.read0 = true
	if b.raw.Cols() == b.width && b.raw.Rows() == b.height {
		b.raw.CopyTo(dst)
		return nil
	}
	// Scale to cover, then crop the centre.
	s := math.Max(float64(b.width)/float64(b.raw.Cols()), float64(b.height)/float64(b.raw.Rows()))
	sw := max(b.width, int(math.Ceil(float64(b.raw.Cols())*s)))
	sh := max(b.height, int(math.Ceil(float64(b.raw.Rows())*s)))
	interp := gocv.InterpolationLinear
	if s < 1 {
		interp = gocv.InterpolationArea
	}
	gocv.Resize(b.raw, &b.scaled, image.Pt(sw, sh), 0, 0, interp)
	x0, y0 := (sw-b.width)/2, (sh-b.height)/2
	roi := b.scaled.Region(image.Rect(x0, y0, x0+b.width, y0+b.height))
	roi.CopyTo(dst)
	roi.Close()
	return nil
}

func (b *background) close() {
	if b.vc != nil {
		b.vc.Close()
	}
	b.raw.Close()
	b.scaled.Close()
}
