package blur

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// TestZeroRedacted: the zero Redacted, and a nil one, are empty and no method
// crashes.
func TestZeroRedacted(t *testing.T) {
	checkNoMatLeak(t)
	for _, tc := range []struct {
		name string
		f    *Redacted
	}{{"zero", &Redacted{}}, {"nil", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			if !f.Empty() || f.Size() != (image.Point{}) || f.Whole() || f.Reason() != "" || f.Regions() != nil {
				t.Errorf("Empty %v, Size %v, Whole %v, Reason %q, Regions %v", f.Empty(), f.Size(), f.Whole(), f.Reason(), f.Regions())
			}
			if _, err := f.EncodeJPEG(90); err == nil {
				t.Error("EncodeJPEG succeeded")
			}
			if err := f.WriteTo(nil); err == nil {
				t.Error("WriteTo succeeded")
			}
			m := f.CloneMat()
			if !m.Empty() {
				t.Error("CloneMat of an empty frame is not empty")
			}
			m.Close()
			if err := f.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// TestRedactedCopiesShareOneFrame: closing one copy empties all copies, and
// closing twice is safe.
func TestRedactedCopiesShareOneFrame(t *testing.T) {
	checkNoMatLeak(t)
	r := mustRedactor(t, DefaultOptions)
	f, err := r.Redact(newFrame(image.Pt(32, 24), color.RGBA{}), WholePlan("warming up"))
	if err != nil {
		t.Fatal(err)
	}
	g := f
	if g.Empty() || g.Size() != image.Pt(32, 24) {
		t.Fatalf("copy: Empty %v, Size %v", g.Empty(), g.Size())
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !f.Empty() {
		t.Error("original not empty after its copy was closed")
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.EncodeJPEG(80); err == nil {
		t.Error("EncodeJPEG succeeded after Close")
	}
	if f.Reason() != "warming up" || !f.Whole() {
		t.Errorf("metadata lost on Close: Whole %v, Reason %q", f.Whole(), f.Reason())
	}
}

func TestEncodeJPEG(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, messiPath)
	defer in.Close()
	r := mustRedactor(t, DefaultOptions)
	f := mustRedact(t, r, in, FacesPlan([]image.Rectangle{image.Rect(200, 50, 260, 120)}))
	for _, tc := range []struct {
		quality int
		ok      bool
	}{{0, true}, {50, true}, {100, true}, {-1, false}, {101, false}} {
		b, err := f.EncodeJPEG(tc.quality)
		if (err == nil) != tc.ok {
			t.Errorf("EncodeJPEG(%d) error = %v, want ok %v", tc.quality, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
			t.Fatalf("EncodeJPEG(%d) is not a JPEG: % x", tc.quality, b[:min(4, len(b))])
		}
		m, err := gocv.IMDecode(b, gocv.IMReadColor)
		if err != nil {
			t.Fatal(err)
		}
		if m.Cols() != in.Cols() || m.Rows() != in.Rows() {
			t.Errorf("decoded %dx%d, want %dx%d", m.Cols(), m.Rows(), in.Cols(), in.Rows())
		}
		m.Close()
	}
	// The bytes belong to the caller: they outlive the frame.
	b, err := f.EncodeJPEG(90)
	if err != nil {
		t.Fatal(err)
	}
	keep := append([]byte(nil), b...)
	_ = f.Close()
	if string(b) != string(keep) {
		t.Error("JPEG bytes changed after Close")
	}
}

func TestCloneMatIsACopy(t *testing.T) {
	checkNoMatLeak(t)
	r := mustRedactor(t, DefaultOptions)
	f, err := r.Redact(newFrame(image.Pt(16, 16), color.RGBA{R: 1, G: 2, B: 3, A: 255}), FacesPlan(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := f.CloneMat()
	m.SetTo(gocv.NewScalar(9, 9, 9, 0))
	m.Close()
	if got := redactedPixels(t, &f).at(0, 0); got != [3]byte{3, 2, 1} {
		t.Errorf("frame pixel = %v after changing its clone, want [3 2 1]", got)
	}
}

func TestWriteTo(t *testing.T) {
	checkNoMatLeak(t)
	r := mustRedactor(t, DefaultOptions)
	f, err := r.Redact(newFrame(image.Pt(64, 48), color.RGBA{G: 255, A: 255}), WholePlan("deadline missed"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteTo(nil); err == nil {
		t.Error("WriteTo(nil) succeeded")
	}

	path := filepath.Join(t.TempDir(), "out.avi")
	w, err := gocv.VideoWriterFile(path, "MJPG", 10, 64, 48, true)
	if err != nil || !w.IsOpened() {
		if w != nil {
			_ = w.Close()
		}
		t.Skipf("no MJPG video writer in this OpenCV build: %v", err)
	}
	for range 3 {
		if err := f.WriteTo(w); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("video file: %v, %v", st, err)
	}
}
