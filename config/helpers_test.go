package config

import (
	"os"
	"path/filepath"
	"testing"
)

const examplePath = "../docs/veil.example.yaml"

// clearEnv hides any VEIL_* configuration variables of the environment the
// tests run in: empty variables are ignored by Load.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range Keys() {
		if _, ok := os.LookupEnv(EnvVar(k)); ok {
			t.Setenv(EnvVar(k), "")
		}
	}
}

// writeFile writes data as veil.yaml in a new temporary directory.
func writeFile(t testing.TB, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "veil.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
