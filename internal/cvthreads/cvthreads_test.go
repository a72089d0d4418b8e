package cvthreads

import "testing"

func TestSetGet(t *testing.T) {
	before := Get()
	defer Set(before)
	Set(1)
	if got := Get(); got != 1 {
		t.Fatalf("Get() = %d after Set(1)", got)
	}
}
