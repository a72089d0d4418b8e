package firmware_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-edge/veil/internal/testenv"
)

// TestSystemdUnits checks the shipped units with systemd's own tools: they
// parse without a warning (systemd-analyze verify, the binary path pointed
// at a stand-in), and their sandboxing keeps systemd's exposure score low
// (systemd-analyze security; 10 is fully exposed, below 2 is "OK").
func TestSystemdUnits(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze is not installed (apt-get install systemd)")
	}
	for _, unit := range []string{"veil.service", "veil-hq.service"} {
		t.Run(unit, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("systemd", unit))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"User=", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=", "Restart=always", "WatchdogSec=", "Type=notify"} {
				if !strings.Contains(string(data), want) {
					t.Errorf("%s lacks %s", unit, want)
				}
			}
			dir := t.TempDir()
			bin := filepath.Join(dir, "veil-stand-in")
			if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			unitText := regexp.MustCompile(`(?m)^ExecStart=\S+`).ReplaceAllString(string(data), "ExecStart="+bin)
			path := filepath.Join(dir, unit)
			if err := os.WriteFile(path, []byte(unitText), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(tool, "verify", "--man=no", path).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
			}
			out, err = exec.Command(tool, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
			if err != nil || m == nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", unit, err, out)
			}
			exposure, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: exposure %.1f", unit, exposure)
			if exposure > 2.0 {
				t.Errorf("%s: exposure %.1f, want at most 2.0 (systemd's \"OK\")", unit, exposure)
			}
		})
	}
}
