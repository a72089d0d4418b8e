package config

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Camera is one camera `veil run` redacts and counts. Cameras are a list in
// the config file's `cameras:` section; unlike the other keys they cannot be
// set from the environment or flags.
type Camera struct {
	// Name identifies the camera in logs, metrics and reports:
	// 1..64 of A-Z a-z 0-9 . _ -
	Name string `yaml:"name"`
	// Source is a video file, an rtsp:// URL or a V4L2 device (/dev/videoN).
	Source string `yaml:"source"`
	// Loop restarts a video file at its end (demos).
	Loop bool `yaml:"loop"`
	// View is how the camera looks at people: "angled" (the default; a
	// person stands at the bottom-centre of their figure) or "overhead"
	// (looking straight down; a person is where their blob's centre is).
	View string `yaml:"view"`
	// Lines are the directed counting lines of this camera.
	Lines []CountLine `yaml:"lines"`
	// Style overrides redact.style for this camera: gaussian, mosaic or
	// fill ("" keeps redact.style).
	Style string `yaml:"style"`
	// Masks are areas filled in every frame of this camera, faces or not
	// (a till's PIN pad): [x0, y0, x1, y1] in frame pixels.
	Masks [][4]int `yaml:"masks"`
	// MinFace overrides detect.min_face for this camera (0 keeps it): a
	// camera mounted so that no face in its picture is smaller searches
	// fewer windows, so its live view waits less for detection.
	MinFace int `yaml:"min_face"`
	// OptinZone makes this a signage camera: [x0, y0, x1, y1], the marked
	// spot in front of the consent sign where a shopper who opted in stands
	// to bind their consent to their face track. Empty: no opt-in here,
	// every face is always redacted.
	OptinZone []int `yaml:"optin_zone"`
}

// Zone is the camera's opt-in zone, if it has one.
func (c Camera) Zone() (image.Rectangle, bool) {
	if len(c.OptinZone) != 4 {
		return image.Rectangle{}, false
	}
	return image.Rect(c.OptinZone[0], c.OptinZone[1], c.OptinZone[2], c.OptinZone[3]), true
}

// Overhead reports whether the camera looks straight down.
func (c Camera) Overhead() bool { return c.View == "overhead" }

// CountLine is a directed counting line A→B in frame pixels: "in" is a
// crossing from its left (as seen on screen) to its right.
type CountLine struct {
	Name string `yaml:"name"`
	Line [4]int `yaml:"line"` // x1, y1, x2, y2
}

// LoadCameras reads the `cameras:` list of a config file ([] when the file
// has none) and checks every entry, naming the entry and field at fault.
func LoadCameras(path string) ([]Camera, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cams, errs := parseCameras(data)
	if len(errs) > 0 {
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = fmt.Errorf("config %s: %w", path, e)
		}
		return nil, errors.Join(out...)
	}
	return cams, nil
}

func parseCameras(data []byte) ([]Camera, []error) {
	var doc struct {
		Cameras yaml.Node `yaml:"cameras"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []error{fmt.Errorf("not valid YAML: %w", err)}
	}
	if doc.Cameras.Kind == 0 {
		return nil, nil
	}
	if doc.Cameras.Kind != yaml.SequenceNode {
		return nil, []error{&FieldError{Key: "cameras", Msg: "is not a list; allowed a list of cameras (name, source, loop, view, lines, style, masks, min_face, optin_zone)"}}
	}
	var errs []error
	cams := make([]Camera, 0, len(doc.Cameras.Content))
	names := map[string]bool{}
	for i, n := range doc.Cameras.Content {
		key := fmt.Sprintf("cameras[%d]", i)
		var c Camera
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(n); err != nil {
			errs = append(errs, &FieldError{Key: key, Msg: err.Error()})
			continue
		}
		dec := yaml.NewDecoder(&buf)
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			errs = append(errs, &FieldError{Key: key, Msg: msg + "; allowed fields name, source, loop, view, lines (each lines entry: name, line: [x1, y1, x2, y2]), style, masks ([[x0, y0, x1, y1], ...]), min_face, optin_zone ([x0, y0, x1, y1])"})
			continue
		}
		errs = append(errs, c.check(key, names)...)
		cams = append(cams, c)
	}
	return cams, errs
}

func (c Camera) check(key string, names map[string]bool) []error {
	var errs []error
	errs = append(errs, uniqueName(key+".name", c.Name, names, "an earlier camera", "a name unique among cameras")...)
	if c.View != "" && c.View != "angled" && c.View != "overhead" {
		errs = append(errs, &FieldError{Key: key + ".view", Msg: fmt.Sprintf("%q is not supported; allowed angled, overhead", c.View)})
	}
	if c.Style != "" && c.Style != "gaussian" && c.Style != "mosaic" && c.Style != "fill" {
		errs = append(errs, &FieldError{Key: key + ".style", Msg: fmt.Sprintf("%q is not supported; allowed gaussian, mosaic, fill (or leave it out for redact.style)", c.Style)})
	}
	for j, m := range c.Masks {
		if m[0] < 0 || m[1] < 0 || m[2] <= m[0] || m[3] <= m[1] {
			errs = append(errs, &FieldError{Key: fmt.Sprintf("%s.masks[%d]", key, j), Msg: fmt.Sprintf("%v is not an area; allowed [x0, y0, x1, y1] with 0 <= x0 < x1 and 0 <= y0 < y1", m)})
		}
	}
	if c.MinFace != 0 && (c.MinFace < 8 || c.MinFace > 128) {
		errs = append(errs, &FieldError{Key: key + ".min_face", Msg: fmt.Sprintf("%d is out of range; allowed 8..128 (or leave it out for detect.min_face)", c.MinFace)})
	}
	if z := c.OptinZone; z != nil && (len(z) != 4 || z[0] < 0 || z[1] < 0 || z[2] <= z[0] || z[3] <= z[1]) {
		errs = append(errs, &FieldError{Key: key + ".optin_zone", Msg: fmt.Sprintf("%v is not an area; allowed [x0, y0, x1, y1] with 0 <= x0 < x1 and 0 <= y0 < y1", z)})
	}
	if c.Source == "" {
		errs = append(errs, &FieldError{Key: key + ".source", Msg: `"" is empty; allowed a video file, rtsp://... URL or /dev/videoN`})
	}
	lnames := map[string]bool{}
	for j, l := range c.Lines {
		lk := fmt.Sprintf("%s.lines[%d]", key, j)
		errs = append(errs, uniqueName(lk+".name", l.Name, lnames, "an earlier line of this camera", "a unique name")...)
		x1, y1, x2, y2 := l.Line[0], l.Line[1], l.Line[2], l.Line[3]
		switch {
		case x1 < 0 || y1 < 0 || x2 < 0 || y2 < 0:
			errs = append(errs, &FieldError{Key: lk + ".line", Msg: fmt.Sprintf("%v has a negative coordinate; allowed [x1, y1, x2, y2] in frame pixels, >= 0", l.Line)})
		case x1 == x2 && y1 == y2:
			errs = append(errs, &FieldError{Key: lk + ".line", Msg: fmt.Sprintf("%v has both ends at one point; allowed two distinct points [x1, y1, x2, y2]", l.Line)})
		}
	}
	return errs
}

// uniqueName checks that name is a valid name not yet in seen, and records
// it. The errors name key; earlier and allowed word the duplicate case.
func uniqueName(key, name string, seen map[string]bool, earlier, allowed string) []error {
	defer func() { seen[name] = true }()
	switch {
	case !validName(name):
		return []error{&FieldError{Key: key, Msg: fmt.Sprintf("%q is not a name; allowed 1..64 of A-Z a-z 0-9 . _ -", name)}}
	case seen[name]:
		return []error{&FieldError{Key: key, Msg: fmt.Sprintf("%q is used by %s; allowed %s", name, earlier, allowed)}}
	}
	return nil
}
