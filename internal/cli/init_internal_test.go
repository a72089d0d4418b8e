package cli

import (
	"path/filepath"
	"testing"
)

// TestInstalledModels: veil init writes the installed release's models
// directory when there is one, so the config it writes works on a box
// installed from the package; elsewhere it writes none (the default).
func TestInstalledModels(t *testing.T) {
	dir := t.TempDir()
	if got := installedModels(dir); got != dir {
		t.Errorf("installedModels(%s) = %q, want it", dir, got)
	}
	if got := installedModels(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("installedModels(missing) = %q, want empty", got)
	}
}
