package malloc

import "testing"

// TestFixMmapThreshold: glibc (Debian's) accepts the setting.
func TestFixMmapThreshold(t *testing.T) {
	if !FixMmapThreshold() {
		t.Fatal("mallopt(M_MMAP_THRESHOLD) refused")
	}
}
