package store

import (
	"testing"

	"github.com/veil-edge/veil/testkit/pgtest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// The Postgres tests share one server (pgtest.Start); Stop ends it.
func TestMain(m *testing.M) { testenv.Main(m, pgtest.Stop) }
