package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzLoad loads fuzzed bytes as a config file. Load must not panic; it
// returns either errors, each prefixed with the file, or a valid Config that
// survives a round trip through YAML.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/config/*.bad.yaml")
	for _, path := range append(seeds, examplePath) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(Default.YAML())
	f.Add([]byte("detect: {every: 1e300, min_face: -9223372036854775809}\ntrack: {hold: 9999999999h}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("models: {dir: \"\\xff\\u2028\"}\n"))

	for _, k := range Keys() {
		if v, ok := os.LookupEnv(EnvVar(k)); ok && v != "" {
			f.Fatalf("%s is set; unset VEIL_* configuration variables to fuzz", EnvVar(k))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "veil.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// The fuzzer has no time limit per input: fail a slow one with
		// the input rather than stall.
		slow := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Load took over 10s on %q", data)) })
		c, err := Load(path, nil, nil)
		slow.Stop()
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "config "+path+": ") && !strings.HasPrefix(line, "  ") {
					t.Errorf("error line not prefixed with the file: %q", line)
				}
			}
			if c != (Config{}) {
				t.Errorf("config returned with an error: %+v", c)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned an invalid config: %v", err)
		}
		if _, err := c.Redact.BlurOptions(); err != nil {
			t.Fatalf("BlurOptions: %v", err)
		}
		// What `veil config show` prints loads back to the same config.
		show := filepath.Join(t.TempDir(), "show.yaml")
		if err := os.WriteFile(show, c.YAML(), 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := Load(show, nil, nil)
		if err != nil {
			t.Fatalf("YAML() does not load: %v\n%s", err, c.YAML())
		}
		if filepath.IsAbs(c.Models.Dir) && back != c {
			t.Fatalf("YAML round trip:\n%s\ngot  %+v\nwant %+v", c.YAML(), back, c)
		}
	})
}
