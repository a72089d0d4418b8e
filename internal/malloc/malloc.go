// Package malloc tunes glibc's allocator for veil's native memory: every
// frame OpenCV, FFmpeg and libvpx handle is a buffer of a megabyte or more,
// allocated and freed many times a second.
//
// glibc serves such blocks with mmap, but after the first one is freed it
// raises its mmap threshold (up to 32 MiB) and serves the following ones from
// its heaps, where they fragment: a 25-minute soak of `veil run` grew by
// about 50 MB/h in native memory while the Go heap stayed flat. A fixed
// threshold of 128 KiB keeps frame buffers in mmap, returned to the system
// when freed; the same soak then stayed within 240–257 MB.
package malloc

/*
#include <malloc.h>

static int veil_fix_mmap_threshold(int bytes) {
#ifdef M_MMAP_THRESHOLD
	return mallopt(M_MMAP_THRESHOLD, bytes);
#else
	return 0;
#endif
}
*/
import "C"

// MmapThreshold is the fixed size from which glibc maps blocks directly.
const MmapThreshold = 128 << 10

// FixMmapThreshold sets glibc's mmap threshold to MmapThreshold, which also
// turns off its dynamic adjustment. It reports whether glibc accepted it.
func FixMmapThreshold() bool {
	return C.veil_fix_mmap_threshold(C.int(MmapThreshold)) == 1
}
