package testenv

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main runs a package's tests and then fails the run if any gocv.Mat was
// leaked (with -tags matprofile) or any goroutine was left running. Use it
// from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }. The after
// functions run after the tests and before the checks, in order: they stop
// what the package's tests shared, such as pgtest.Stop's server.
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if code == 0 {
		if n, where := matLeaks(); n != 0 {
			fmt.Fprintf(os.Stderr, "gocv MatProfile: %d Mats leaked:\n%s\n", n, where)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines leaked: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
