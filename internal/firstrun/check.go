// Package firstrun holds what `veil init` needs beyond its prompts and
// flags:
//
//   - check.go: each answer checked by the rule config applies to its key
//     (Name, Field, Source, ParseLine, ParseArea), errors as
//     *config.FieldError naming the key and what is allowed;
//   - camera.go: Open probes a camera as `veil run` opens it, and
//     Camera.Snapshot takes one frame through the face detector and the
//     redactor (never a raw frame); Overlay draws counting lines on it;
//   - file.go: File, the answers rendered as a config file.
package firstrun

import (
	"errors"
	"fmt"
	"image"
	"strings"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/internal/app"
)

// Name checks a store, device, camera, line or user name with the one rule
// for names (egress.NameProblem), as config does.
func Name(key, s string) error {
	if p := egress.NameProblem(s); p != "" {
		return &config.FieldError{Key: key, Msg: p}
	}
	return nil
}

// Field checks one config key's value by config's own validation: set
// writes the value into the defaults, and the error is the one Validate
// reports for key, if any.
func Field(key string, set func(c *config.Config)) error {
	c := config.Default
	set(&c)
	err := c.Validate()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var fe *config.FieldError
		if errors.As(e, &fe) && fe.Key == key {
			return fe
		}
	}
	return nil
}

// SourceKinds says what a camera source may be.
const SourceKinds = "an rtsp:// or rtsps:// URL, an http:// or https:// MJPEG URL, /dev/videoN, or a video file"

// Source checks the form of a camera source (not whether it opens: Open
// does that).
func Source(key, s string) error {
	bad := func(why string) error {
		return &config.FieldError{Key: key, Msg: fmt.Sprintf("%q %s; allowed %s", s, why, SourceKinds)}
	}
	switch {
	case s == "":
		return bad("is empty")
	case strings.TrimSpace(s) != s || strings.ContainsAny(s, "\r\n\t"):
		return bad("has spaces around it or control characters")
	case strings.Contains(s, "://"):
		scheme, rest, _ := strings.Cut(s, "://")
		switch strings.ToLower(scheme) {
		case "rtsp", "rtsps", "http", "https":
		default:
			return bad("is not a camera URL")
		}
		if host, _, _ := strings.Cut(rest, "/"); host == "" {
			return bad("has no host")
		}
	case strings.HasPrefix(s, "/dev/video"):
		n := strings.TrimPrefix(s, "/dev/video")
		if n == "" || strings.Trim(n, "0123456789") != "" {
			return bad("is not a V4L2 device name like /dev/video0")
		}
	}
	return nil
}

// ParseLine reads a counting line "x1,y1,x2,y2" (as veil count's --line)
// and checks it lies in a frame of size.
func ParseLine(key, name, s string, size image.Point) (config.CountLine, error) {
	allowed := fmt.Sprintf("allowed x1,y1,x2,y2: two distinct points with x in 0..%d and y in 0..%d (the camera's %dx%d frame)", size.X, size.Y, size.X, size.Y)
	l, err := app.ParseLine(name, strings.TrimSpace(s))
	if err == nil {
		err = l.Valid(size)
	}
	if err != nil {
		return config.CountLine{}, &config.FieldError{Key: key, Msg: fmt.Sprintf("%v; %s", err, allowed)}
	}
	return config.CountLine{Name: name, Line: l.Coords()}, nil
}

// ParseArea reads an area "x0,y0,x1,y1" (an opt-in zone) and checks it is
// a rectangle in a frame of size.
func ParseArea(key, s string, size image.Point) ([]int, error) {
	var x0, y0, x1, y1 int
	var extra string
	n, _ := fmt.Sscanf(strings.TrimSpace(s), "%d,%d,%d,%d%s", &x0, &y0, &x1, &y1, &extra)
	if n != 4 || x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0 || x1 > size.X || y1 > size.Y {
		return nil, &config.FieldError{Key: key, Msg: fmt.Sprintf("%q is not an area of the %dx%d frame; allowed x0,y0,x1,y1 with 0 <= x0 < x1 <= %d and 0 <= y0 < y1 <= %d",
			s, size.X, size.Y, size.X, size.Y)}
	}
	return []int{x0, y0, x1, y1}, nil
}
