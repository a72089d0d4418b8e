package blur

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine or a gocv Mat outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "blur: leaked goroutines: %v\n", err)
		code = max(code, 1)
	}
	if !matProfileOn {
		fmt.Fprintln(os.Stderr, "blur: Mat leaks not checked; run the tests with -tags matprofile")
	} else if n := matCount(); n != 0 {
		fmt.Fprintf(os.Stderr, "blur: %d Mats leaked:\n%s\n", n, matProfile())
		code = max(code, 1)
	}
	os.Exit(code)
}

// checkNoMatLeak fails t if it ends with more live Mats than it started with.
// Register it first so that it runs after the test's other cleanups.
func checkNoMatLeak(t *testing.T) {
	t.Helper()
	before := matCount()
	t.Cleanup(func() {
		if after := matCount(); after != before {
			t.Errorf("%d Mats leaked by %s:\n%s", after-before, t.Name(), matProfile())
		}
	})
}
