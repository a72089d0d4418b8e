package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/veil-edge/veil/models"
)

// ModelsCopy copies the verified models (ModelsDir) into a temporary
// directory and returns it. The file of the model called name is left out
// if missing is set, or has one byte flipped if corrupt is set; "" names
// none. Without the models the test is skipped (Missing).
func ModelsCopy(t testing.TB, name string, corrupt, missing bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, e := range models.Manifest() {
		if e.Name == name && missing {
			continue
		}
		b, err := os.ReadFile(e.Path(ModelsDir()))
		if err != nil {
			Missing(t, "models not fetched: "+err.Error())
		}
		if e.Name == name && corrupt {
			b[len(b)/2] ^= 0x40
		}
		if err := os.WriteFile(filepath.Join(dir, e.File), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
