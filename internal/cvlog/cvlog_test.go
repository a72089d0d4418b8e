package cvlog

import "testing"

func TestSetGet(t *testing.T) {
	before := Get()
	defer Set(before)
	for _, l := range []Level{Silent, Debug, Warning} {
		Set(l)
		if got := Get(); got != l {
			t.Fatalf("Get() = %d after Set(%d)", got, l)
		}
	}
}
