package store

import (
	"testing"

	"github.com/veil-edge/veil/internal/pgtest"
	"github.com/veil-edge/veil/internal/testenv"
)

// The Postgres tests share one server (pgtest.Start); Stop ends it.
func TestMain(m *testing.M) { testenv.Main(m, pgtest.Stop) }
