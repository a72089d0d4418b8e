package packaging_test

import (
	"testing"

	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
