package synth

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// SourceEntry is one hand-labelled record of testdata/faces/faces.json.
type SourceEntry struct {
	ID     string  `json:"id"`
	Source string  `json:"source"`          // absolute path of the packaged file
	Frame  *int    `json:"frame,omitempty"` // video sources: 0-based frame read sequentially
	Range  *[2]int `json:"npy_range,omitempty"`
	Kind   string  `json:"kind"` // "photo" or "cartoon"
	Pose   string  `json:"pose"`
	Box    [4]int  `json:"box"`               // face box x0,y0,x1,y1
	Ctx    *[4]int `json:"context,omitempty"` // region usable as context; default whole image
	Weight float64 `json:"weight"`            // sampling weight of the entry (a range shares it)
	Note   string  `json:"note"`
}

// SourceFile is the whole faces.json.
type SourceFile struct {
	Version    int           `json:"version"`
	Convention string        `json:"convention"`
	Faces      []SourceEntry `json:"faces"`
}

// Source is one loaded face image. The Library owns Image.
type Source struct {
	ID     string          // entry id, "lfw-017" for ranged entries
	Group  string          // entry id (shared by all members of a range)
	Kind   string          // "photo" or "cartoon"
	Pose   string          // "frontal", "profile", ...
	Box    image.Rectangle // face box in Image
	Ctx    image.Rectangle // usable context region in Image
	Weight float64         // sampling weight (a range's weight is split among its members)
	Image  gocv.Mat        // BGR 8-bit
}

// Library holds the loaded face sources. Close releases their images.
type Library struct {
	Sources []Source
}

// Close releases every source image.
func (l *Library) Close() {
	for i := range l.Sources {
		l.Sources[i].Image.Close()
	}
	l.Sources = nil
}

// DefaultFacesJSON finds testdata/faces/faces.json: $VEIL_FACES_JSON, then
// walking up from the working directory, then the source tree this package
// was built from.
func DefaultFacesJSON() string {
	if p := os.Getenv("VEIL_FACES_JSON"); p != "" {
		return p
	}
	rel := filepath.Join("testdata", "faces", "faces.json")
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, rel)); err == nil {
				return filepath.Join(d, rel)
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", rel)
}

// ReadSourceFile parses faces.json without loading any image.
func ReadSourceFile(path string) (SourceFile, error) {
	var f SourceFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// LoadLibrary reads faces.json and loads every labelled face whose kind is
// in kinds (all kinds when kinds is empty).
func LoadLibrary(path string, kinds ...string) (*Library, error) {
	f, err := ReadSourceFile(path)
	if err != nil {
		return nil, err
	}
	want := func(k string) bool {
		if len(kinds) == 0 {
			return true
		}
		for _, w := range kinds {
			if w == k {
				return true
			}
		}
		return false
	}
	lib := &Library{}
	videoFrames := map[string]map[int]gocv.Mat{} // path -> frame -> image, read once
	defer func() {
		for _, fr := range videoFrames {
			for _, m := range fr {
				m.Close()
			}
		}
	}()
	for _, e := range f.Faces {
		if e.Frame != nil && want(e.Kind) {
			if videoFrames[e.Source] == nil {
				videoFrames[e.Source] = map[int]gocv.Mat{}
			}
			videoFrames[e.Source][*e.Frame] = gocv.Mat{}
		}
	}
	for path, frames := range videoFrames {
		if err := readFrames(path, frames); err != nil {
			lib.Close()
			return nil, err
		}
	}
	for _, e := range f.Faces {
		if !want(e.Kind) {
			continue
		}
		box := image.Rect(e.Box[0], e.Box[1], e.Box[2], e.Box[3])
		add := func(id string, img gocv.Mat, weight float64) error {
			bounds := image.Rect(0, 0, img.Cols(), img.Rows())
			ctx := bounds
			if e.Ctx != nil {
				ctx = image.Rect(e.Ctx[0], e.Ctx[1], e.Ctx[2], e.Ctx[3]).Intersect(bounds)
			}
			if box.Empty() || !box.In(bounds) || !box.In(ctx) {
				img.Close()
				return fmt.Errorf("faces.json %s: box %v not inside image %v and context %v", id, box, bounds, ctx)
			}
			w := weight
			if w <= 0 {
				w = 1
			}
			lib.Sources = append(lib.Sources, Source{ID: id, Group: e.ID, Kind: e.Kind, Pose: e.Pose,
				Box: box, Ctx: ctx, Weight: w, Image: img})
			return nil
		}
		switch {
		case e.Range != nil:
			imgs, err := readNPYGray(e.Source, e.Range[0], e.Range[1])
			if err != nil {
				lib.Close()
				return nil, err
			}
			n := len(imgs)
			for i, img := range imgs {
				if err := add(fmt.Sprintf("%s-%03d", e.ID, e.Range[0]+i), img, e.Weight/float64(n)); err != nil {
					for _, m := range imgs[i+1:] {
						m.Close()
					}
					lib.Close()
					return nil, err
				}
			}
		case e.Frame != nil:
			m := videoFrames[e.Source][*e.Frame]
			if m.Empty() {
				lib.Close()
				return nil, fmt.Errorf("faces.json %s: %s has no frame %d", e.ID, e.Source, *e.Frame)
			}
			if err := add(e.ID, m.Clone(), e.Weight); err != nil {
				lib.Close()
				return nil, err
			}
		default:
			m := gocv.IMRead(e.Source, gocv.IMReadColor)
			if m.Empty() {
				m.Close()
				lib.Close()
				return nil, fmt.Errorf("faces.json %s: cannot read %s", e.ID, e.Source)
			}
			if err := add(e.ID, m, e.Weight); err != nil {
				lib.Close()
				return nil, err
			}
		}
	}
	if len(lib.Sources) == 0 {
		return nil, fmt.Errorf("%s: no face sources of kinds %v", path, kinds)
	}
	return lib, nil
}

// readFrames reads the video sequentially (seeking is not frame-exact with
// every codec) and fills frames[i] with clones of the wanted frames.
func readFrames(path string, frames map[int]gocv.Mat) error {
	last := -1
	for i := range frames {
		last = max(last, i)
	}
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	for i := 0; i <= last; i++ {
		if !vc.Read(&m) || m.Empty() {
			return fmt.Errorf("%s: ends before frame %d", path, last)
		}
		if _, ok := frames[i]; ok {
			frames[i] = m.Clone()
		}
	}
	return nil
}

// readNPYGray reads images [from, to) of a little-endian float64 (N,H,W)
// .npy array holding values in 0..1 and returns them as BGR 8-bit Mats.
func readNPYGray(path string, from, to int) ([]gocv.Mat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 10 || string(b[1:6]) != "NUMPY" {
		return nil, fmt.Errorf("%s: not a .npy file", path)
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, fmt.Errorf("%s: npy version %d", path, b[6])
	}
	if off+hlen > len(b) {
		return nil, fmt.Errorf("%s: truncated header", path)
	}
	hdr := string(b[off : off+hlen])
	if !strings.Contains(hdr, "'<f8'") || strings.Contains(hdr, "'fortran_order': True") {
		return nil, fmt.Errorf("%s: want C-order <f8, header %q", path, hdr)
	}
	shape, err := npyShape(hdr)
	if err != nil || len(shape) != 3 {
		return nil, fmt.Errorf("%s: want a 3-D shape, header %q", path, hdr)
	}
	n, h, w := shape[0], shape[1], shape[2]
	data := b[off+hlen:]
	if len(data) < n*h*w*8 {
		return nil, fmt.Errorf("%s: %d data bytes for shape %v", path, len(data), shape)
	}
	if from < 0 || to > n || from >= to {
		return nil, fmt.Errorf("%s: range [%d,%d) outside %d images", path, from, to, n)
	}
	var out []gocv.Mat
	for i := from; i < to; i++ {
		px := make([]byte, 0, h*w*3)
		for p := 0; p < h*w; p++ {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[(i*h*w+p)*8:]))
			g := byte(math.Round(math.Max(0, math.Min(1, v)) * 255))
			px = append(px, g, g, g)
		}
		m, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, px)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func npyShape(hdr string) ([]int, error) {
	i := strings.Index(hdr, "'shape':")
	if i < 0 {
		return nil, errors.New("no shape")
	}
	s := hdr[i+len("'shape':"):]
	a, b := strings.Index(s, "("), strings.Index(s, ")")
	if a < 0 || b < a {
		return nil, errors.New("bad shape")
	}
	var shape []int
	for _, f := range strings.Split(s[a+1:b], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		shape = append(shape, v)
	}
	return shape, nil
}

// Still returns source i with its context, scaled so that the face box is
// faceWidth pixels wide, and the face box in the returned image. The
// context is cut margin*faceWidth beyond the face box on each side (kept
// within the source's context region). The caller owns the Mat.
func (l *Library) Still(i, faceWidth int, margin float64) (gocv.Mat, image.Rectangle) {
	s := &l.Sources[i]
	m := int(math.Round(margin * float64(s.Box.Dx())))
	r := image.Rect(s.Box.Min.X-m, s.Box.Min.Y-m, s.Box.Max.X+m, s.Box.Max.Y+m).Intersect(s.Ctx)
	crop := s.Image.Region(r)
	defer crop.Close()
	sc := float64(faceWidth) / float64(s.Box.Dx())
	out := gocv.NewMat()
	interp := gocv.InterpolationLinear
	if sc < 1 {
		interp = gocv.InterpolationArea
	}
	size := image.Pt(max(1, int(math.Round(float64(r.Dx())*sc))), max(1, int(math.Round(float64(r.Dy())*sc))))
	gocv.Resize(crop, &out, size, 0, 0, interp)
	fx := func(v int) int { return int(math.Round(float64(v-r.Min.X) * sc)) }
	fy := func(v int) int { return int(math.Round(float64(v-r.Min.Y) * sc)) }
	return out, image.Rect(fx(s.Box.Min.X), fy(s.Box.Min.Y), fx(s.Box.Max.X), fy(s.Box.Max.Y))
}
