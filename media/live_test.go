package media_test

import (
	"context"
	"fmt"
	"image"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/testkit/camtest"
)

// numbered serves frames whose two halves' grey levels spell the frame
// number (0..255), which survives JPEG.
func numbered(i int) ([]byte, error) {
	m := gocv.NewMatWithSize(120, 160, gocv.MatTypeCV8UC3)
	defer m.Close()
	hi, lo := float64((i/16)%16*16+8), float64(i%16*16+8)
	left := m.Region(image.Rect(0, 0, 80, 120))
	left.SetTo(gocv.NewScalar(hi, hi, hi, 0))
	left.Close()
	right := m.Region(image.Rect(80, 0, 160, 120))
	right.SetTo(gocv.NewScalar(lo, lo, lo, 0))
	right.Close()
	b, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return append([]byte(nil), b.GetBytes()...), nil
}

func frameNumber(m gocv.Mat) int {
	hi := int(m.GetUCharAt(60, 40*3)) / 16
	lo := int(m.GetUCharAt(60, 120*3)) / 16
	return hi*16 + lo
}

// openCamera starts a numbered test camera at fps and opens it as veil run
// does; the source and the frame Mat are closed when the test ends.
func openCamera(t *testing.T, fps float64) (*camtest.Camera, *media.LiveSource, *gocv.Mat) {
	t.Helper()
	cam := camtest.Start(t, fps, numbered, false)
	src, err := media.OpenLive(context.Background(), cam.URL(), false)
	if err != nil {
		t.Fatal(err)
	}
	m := gocv.NewMat()
	t.Cleanup(func() { m.Close(); src.Close() })
	return cam, src, &m
}

// TestStreamKeepsNewestFrame: when veil reads a stream slower than the
// camera sends, it gets the newest frame, not the next one in a growing
// buffer, and the frames it skipped are counted as dropped.
func TestStreamKeepsNewestFrame(t *testing.T) {
	_, src, m := openCamera(t, 50)
	var got []int
	for range 4 {
		if err := src.Read(m); err != nil {
			t.Fatal(err)
		}
		got = append(got, frameNumber(*m))
		time.Sleep(300 * time.Millisecond) // veil busy: about 15 frames arrive
	}
	received, dropped := src.Counts()
	t.Logf("frames read %v; received %d, dropped %d", got, received, dropped)
	for i := 1; i < len(got); i++ {
		if got[i]-got[i-1] < 5 {
			t.Errorf("read frame %d after %d: older frames queued up instead of being dropped", got[i], got[i-1])
		}
	}
	if dropped < 20 || received < int64(len(got))+dropped {
		t.Errorf("received %d, dropped %d: the drops are not counted", received, dropped)
	}
}

// TestStreamBreakIsAnError: a stream that goes away is an error (the
// camera supervisor retries it), not an end of file, and Close returns.
func TestStreamBreakIsAnError(t *testing.T) {
	cam, src, m := openCamera(t, 25)
	if err := src.Read(m); err != nil {
		t.Fatal(err)
	}
	cam.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := src.Read(m)
		if err != nil {
			if want := fmt.Sprintf("source %s: stream ended or broke", cam.URL()); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("frames still arrive 30 s after the camera went away")
		}
	}
}
