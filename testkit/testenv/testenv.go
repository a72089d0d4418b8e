// Package testenv finds the packaged media and verified models tests use,
// and decides whether a test may skip when something is missing: on a
// developer's machine it skips, under CI=true it fails.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Packaged media used by tests (Debian opencv-doc and python3-skimage).
const (
	VTest     = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
	Messi     = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
	Megamind  = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
	Astronaut = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
)

// AstronautFace is the hand-labelled face box in astronaut.png (x0, y0, x1,
// y1), brow to chin, as in testdata/faces/faces.json.
var AstronautFace = [4]int{178, 89, 274, 181}

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ModelsDir is where scripts/setup.sh fetches verified models.
func ModelsDir() string { return filepath.Join(Root(), "models", "files") }

// Need skips the test when path is missing, or fails it under CI=true.
func Need(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, path+" is missing (run scripts/setup.sh)")
	}
}

// Missing skips with why, or fails under CI=true.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("required for CI: %s", why)
	}
	t.Skip(why)
}
