package cli_test

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-edge/veil/internal/testenv"
)

// TestDemoPrintsReports runs veil demo for a few seconds with 1-second
// windows: it starts its embedded broker, and every count report it prints
// arrived over MQTT, in seq order, for the demo camera's two lines.
func TestDemoPrintsReports(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	t.Setenv("VEIL_FOOTFALL_WINDOW", "1s")
	t.Setenv("VEIL_HTTP_LISTEN", "127.0.0.1:0")
	t.Setenv("VEIL_MODELS_DIR", testenv.ModelsDir())
	out, err := veil(t, "demo", "--duration", "4s", "--dir", filepath.Join(t.TempDir(), "demo"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "embedded MQTT broker: tcp://127.0.0.1:") || !strings.Contains(out, "status  veil/v1/demo-store/demo-box/status  online") {
		t.Fatalf("no embedded broker or online status in:\n%s", out)
	}
	re := regexp.MustCompile(`report  veil/v1/demo-store/demo-box/footfall  camera=plaza line=(crossing|road) \S+ in=\d+ out=\d+ \(boot 1, seq (\d+)\)`)
	ms := re.FindAllStringSubmatch(out, -1)
	if len(ms) < 4 {
		t.Fatalf("%d reports printed, want >= 4 (two lines, 1 s windows, 4 s):\n%s", len(ms), out)
	}
	for i, m := range ms {
		if want := strconv.Itoa(i + 1); m[2] != want {
			t.Fatalf("report %d has seq %s, want %s: reports arrive in order, none lost:\n%s", i, m[2], want, out)
		}
	}
	if !strings.Contains(out, "status  veil/v1/demo-store/demo-box/status  offline") {
		t.Errorf("no offline status at the end:\n%s", out)
	}
}
