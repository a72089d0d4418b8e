package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCameras(t *testing.T) {
	good := `
detect:
  every: 4
cameras:
  - name: door
    source: /usr/share/doc/opencv-doc/examples/data/vtest.avi
    loop: true
    lines:
      - {name: entrance, line: [350, 150, 350, 450]}
      - {name: aisle, line: [520, 260, 768, 260]}
  - name: till
    source: rtsp://10.0.0.5/stream1
    view: overhead
    style: fill
    masks: [[0, 400, 120, 480]]
    min_face: 24
`
	dir := t.TempDir()
	path := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	cams, err := LoadCameras(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cams) != 2 || cams[0].Name != "door" || !cams[0].Loop || len(cams[0].Lines) != 2 ||
		cams[0].Lines[1].Line != [4]int{520, 260, 768, 260} || cams[1].Source != "rtsp://10.0.0.5/stream1" || !cams[1].Overhead() || cams[0].Overhead() ||
		cams[1].Style != "fill" || len(cams[1].Masks) != 1 || cams[1].Masks[0] != [4]int{0, 400, 120, 480} || cams[1].MinFace != 24 || cams[0].MinFace != 0 {
		t.Fatalf("cameras = %+v", cams)
	}
	// The same file passes Load: the cameras list is not an unknown key.
	if _, err := Load(path, nil, nil); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestLoadCamerasErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"not a list", "cameras: door\n", []string{"cameras: is not a list"}},
		{"unknown field", "cameras:\n  - {name: a, source: x.avi, sauce: y}\n", []string{"cameras[0]:", "field sauce not found", "allowed fields name, source, loop, view, lines"}},
		{"bad style", "cameras:\n  - {name: a, source: x.avi, style: sepia}\n", []string{`cameras[0].style: "sepia" is not supported; allowed gaussian, mosaic, fill`}},
		{"bad mask", "cameras:\n  - {name: a, source: x.avi, masks: [[10, 10, 5, 20]]}\n", []string{"cameras[0].masks[0]: [10 10 5 20] is not an area"}},
		{"bad name", "cameras:\n  - {name: 'front door', source: x.avi}\n", []string{`cameras[0].name: "front door" is not a name`}},
		{"duplicate name", "cameras:\n  - {name: a, source: x.avi}\n  - {name: a, source: y.avi}\n", []string{`cameras[1].name: "a" is used by an earlier camera`}},
		{"min_face too small", "cameras:\n  - {name: a, source: x.avi, min_face: 4}\n", []string{"cameras[0].min_face: 4 is out of range; allowed 8..128"}},
		{"bad view", "cameras:\n  - {name: a, source: x.avi, view: fisheye}\n", []string{`cameras[0].view: "fisheye" is not supported; allowed angled, overhead`}},
		{"no source", "cameras:\n  - {name: a}\n", []string{`cameras[0].source: "" is empty`}},
		{"short line", "cameras:\n  - {name: a, source: x.avi, lines: [{name: l, line: [1, 2, 3]}]}\n", []string{"cameras[0]:"}},
		{"point line", "cameras:\n  - {name: a, source: x.avi, lines: [{name: l, line: [5, 5, 5, 5]}]}\n", []string{"cameras[0].lines[0].line: [5 5 5 5] has both ends at one point"}},
		{"negative", "cameras:\n  - {name: a, source: x.avi, lines: [{name: l, line: [-5, 5, 5, 9]}]}\n", []string{"cameras[0].lines[0].line: [-5 5 5 9] has a negative coordinate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := parseCameras([]byte(tc.yaml))
			if len(errs) == 0 {
				t.Fatal("accepted")
			}
			msg := errs[0].Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func FuzzParseCameras(f *testing.F) {
	f.Add([]byte("cameras:\n  - {name: a, source: x.avi, lines: [{name: l, line: [1, 2, 3, 4]}]}\n"))
	f.Add([]byte("cameras: 5\n"))
	f.Add([]byte("cameras:\n  - name: [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cams, errs := parseCameras(data)
		if len(errs) == 0 {
			names := map[string]bool{}
			for i, c := range cams {
				if es := c.check("x", names); len(es) != 0 {
					t.Fatalf("camera %d accepted but fails its own check: %v", i, es)
				}
			}
		}
	})
}
