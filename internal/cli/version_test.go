package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/veil-edge/veil/internal/cli"
)

// TestVersion: veil --version prints "veil" and the build's version.
func TestVersion(t *testing.T) {
	root := cli.NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "veil dev") || !strings.HasSuffix(got, "\n") {
		t.Errorf("veil --version printed %q, want \"veil dev…\" (an unstamped build)", got)
	}
}
