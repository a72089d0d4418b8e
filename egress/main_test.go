package egress

import (
	"os"
	"testing"

	"github.com/veil-edge/veil/testkit/testenv"
)

// TestMain runs the tests and fails on leaked goroutines. When the test
// binary is started by TestPublishCrash as a child (childEnv set), it runs
// crashChild instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(crashChild())
	}
	testenv.Main(m)
}
