package firmware_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-edge/veil/testkit/testenv"
)

// hardening is what every shipped unit sets.
var hardening = []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "SystemCallArchitectures=native"}

// units are the shipped units: directives each must set (as whole lines),
// paths it must be able to write (in ReadWritePaths=), and the most
// systemd-analyze security exposure allowed (10 is fully exposed, below 2
// is "OK").
var units = []struct {
	name        string
	directives  []string
	writable    []string
	maxExposure float64
}{
	{
		name: "veil.service",
		directives: []string{"User=veil", "Type=notify", "Restart=always", "WatchdogSec=60s",
			// A release that crash-loops until the start limit is rolled
			// back by the previous one.
			"OnFailure=veil-recover.service"},
		// State, and the install root the update agent switches releases in.
		writable:    []string{"/var/lib/veil", "/opt/veil"},
		maxExposure: 2.0, // measured 1.6
	},
	{
		name:        "veil-hq.service",
		directives:  []string{"User=veil-hq", "Type=notify", "Restart=always", "WatchdogSec=60s"},
		writable:    []string{"/var/lib/veil-hq"},
		maxExposure: 2.0, // measured 1.4
	},
	{
		name: "veil-recover.service",
		directives: []string{"User=veil", "Type=oneshot",
			"ExecStart=/opt/veil/previous/veil update recover --failed --config /etc/veil/veil.yaml",
			"ExecStartPost=+/usr/bin/systemctl reset-failed veil.service",
			"ExecStartPost=+/usr/bin/systemctl start --no-block veil.service",
			"PrivateDevices=yes", "PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX"},
		writable:    []string{"/opt/veil"},
		maxExposure: 1.0, // measured 0.7
	},
}

// TestSystemdUnits checks the shipped units: the directives their job needs,
// then with systemd's own tools that they parse without a warning
// (systemd-analyze verify, ExecStart's binary pointed at a stand-in) and that
// their sandboxing keeps systemd's exposure score low (systemd-analyze
// security).
func TestSystemdUnits(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze is not installed (apt-get install systemd)")
	}
	// All units in one directory, as installed, so OnFailure= finds its unit.
	dir := t.TempDir()
	bin := filepath.Join(dir, "veil-stand-in")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		data, err := os.ReadFile(filepath.Join("systemd", u.name))
		if err != nil {
			t.Fatal(err)
		}
		unitText := regexp.MustCompile(`(?m)^ExecStart=\S+`).ReplaceAllString(string(data), "ExecStart="+bin)
		if err := os.WriteFile(filepath.Join(dir, u.name), []byte(unitText), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range units {
		t.Run(u.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("systemd", u.name))
			if err != nil {
				t.Fatal(err)
			}
			set := directives(string(data))
			for _, want := range append(slices.Clone(hardening), u.directives...) {
				k, v, _ := strings.Cut(want, "=")
				if !slices.Contains(set[k], v) {
					t.Errorf("%s lacks %s (has %s=%q)", u.name, want, k, set[k])
				}
			}
			var rw []string
			for _, v := range set["ReadWritePaths"] {
				rw = append(rw, strings.Fields(v)...)
			}
			for _, p := range u.writable {
				if !slices.Contains(rw, p) {
					t.Errorf("%s: %s is not writable (ReadWritePaths %q)", u.name, p, rw)
				}
			}

			path := filepath.Join(dir, u.name)
			out, err := exec.Command(tool, "verify", "--man=no", path).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", u.name, err, out)
			}
			out, err = exec.Command(tool, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
			if err != nil || m == nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", u.name, err, out)
			}
			exposure, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: exposure %.1f", u.name, exposure)
			if exposure > u.maxExposure {
				t.Errorf("%s: exposure %.1f, want at most %.1f", u.name, exposure, u.maxExposure)
			}
		})
	}
}

// directives returns a unit file's settings, every value of each key in
// order; comments and section headers are skipped. Units here use no line
// continuations.
func directives(unit string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[strings.TrimSpace(k)] = append(out[strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return out
}
