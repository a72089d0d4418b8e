package media_test

import (
	"context"
	"errors"
	"image"
	"io"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/media"
)

// numberedVideo writes n frames at fps as an MJPEG .avi; frame i carries i
// in its grey levels (read back with frameNumber).
func numberedVideo(t *testing.T, n int, fps float64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "numbered.avi")
	w, err := gocv.VideoWriterFile(path, "MJPG", fps, 160, 120, true)
	if err != nil || !w.IsOpened() {
		if w != nil {
			w.Close()
		}
		t.Fatalf("cannot write %s: %v", path, err)
	}
	defer w.Close()
	for i := range n {
		b, err := numbered(i)
		if err != nil {
			t.Fatal(err)
		}
		m, err := gocv.IMDecode(b, gocv.IMReadColor)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Write(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestFileCamera plays a numbered file as a camera and reads it at several
// speeds: whatever the reader does, the camera runs at the file's frame
// rate, a slow reader gets the newest frame and the ones it missed are
// counted as dropped, every frame read reports its own position in the file,
// and the end of the file is io.EOF.
func TestFileCamera(t *testing.T) {
	const frames, fps = 40, 50 // 0.8 s of video, a frame every 20 ms
	video := numberedVideo(t, frames, fps)
	cases := []struct {
		name       string
		startAfter time.Duration // before the first read
		busy       time.Duration // after each read
		minDropped int
		maxDropped int
		minGap     int // smallest step between the positions of frames read
	}{
		// Keeping up at 50 fps: a loaded machine may miss a frame now and then.
		{name: "reader keeps up", maxDropped: frames / 5, minGap: 1},
		// About five frames arrive while the reader is busy; it gets the newest.
		{name: "slow reader", busy: 100 * time.Millisecond, minDropped: frames * 2 / 3, maxDropped: frames, minGap: 2},
		// The camera does not wait for its first reader.
		{name: "late reader", startAfter: 400 * time.Millisecond, minDropped: 15, maxDropped: frames},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			src, err := media.OpenFileCamera(context.Background(), video)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if info := src.Info(); info.Frames != frames || info.FPS != fps || info.Size != image.Pt(160, 120) {
				t.Errorf("info %+v, want %d frames at %v fps, 160x120", info, frames, fps)
			}
			time.Sleep(tc.startAfter)
			m := gocv.NewMat()
			defer m.Close()
			var got []int64
			for {
				err := src.Read(&m)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				pos, ok := src.Position(len(got))
				if !ok {
					t.Fatalf("no position for frame %d read", len(got))
				}
				if n := frameNumber(m); int64(n) != pos {
					t.Errorf("frame %d read shows file frame %d but reports position %d", len(got), n, pos)
				}
				got = append(got, pos)
				time.Sleep(tc.busy)
			}
			elapsed := time.Since(t0)
			received, dropped := src.Counts()
			t.Logf("read %d frames in %s: positions %v; received %d, dropped %d", len(got), elapsed.Round(time.Millisecond), got, received, dropped)
			if _, ok := src.Position(len(got)); ok {
				t.Errorf("a position for frame %d, which was never read", len(got))
			}
			if received != frames || int64(len(got))+dropped != frames {
				t.Errorf("received %d, read %d, dropped %d: want %d received = read + dropped", received, len(got), dropped, frames)
			}
			if dropped < int64(tc.minDropped) || dropped > int64(tc.maxDropped) {
				t.Errorf("dropped %d, want %d..%d", dropped, tc.minDropped, tc.maxDropped)
			}
			for i := 1; i < len(got); i++ {
				if got[i]-got[i-1] < int64(max(1, tc.minGap)) {
					t.Errorf("frame read %d is file frame %d after %d: want a step of at least %d", i, got[i], got[i-1], max(1, tc.minGap))
				}
			}
			if len(got) > 0 && got[len(got)-1] < frames-1-int64(tc.busy/(time.Second/fps)) {
				t.Errorf("the last frame read is file frame %d of %d: the end of the file was lost", got[len(got)-1], frames)
			}
			if min := time.Duration(frames-1) * time.Second / fps; elapsed < min {
				t.Errorf("the file played in %s, faster than its frame rate allows (%s)", elapsed, min)
			}
			// Read after the end stays at the end.
			if err := src.Read(&m); !errors.Is(err, io.EOF) {
				t.Errorf("read after the end: %v, want io.EOF", err)
			}
		})
	}
}

// TestFileCameraClose: closing a file camera in the middle of the file
// stops its goroutine and releases the frame it held (TestMain checks both).
func TestFileCameraClose(t *testing.T) {
	src, err := media.OpenFileCamera(context.Background(), numberedVideo(t, 40, 50))
	if err != nil {
		t.Fatal(err)
	}
	m := gocv.NewMat()
	defer m.Close()
	if err := src.Read(&m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a newer frame waits in the camera
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := media.OpenFileCamera(context.Background(), filepath.Join(t.TempDir(), "missing.avi")); err == nil {
		t.Error("a missing file opened as a camera")
	}
}
