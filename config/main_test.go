package config

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind (viper starts
// none unless a file is watched; this keeps it that way).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
