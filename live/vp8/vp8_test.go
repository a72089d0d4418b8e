package vp8

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/testkit/testenv"
	"gocv.io/x/gocv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// vtestFrames returns the first n frames of vtest.avi resized to w×h; the
// caller closes them.
func vtestFrames(tb testing.TB, n, w, h int) []gocv.Mat {
	tb.Helper()
	testenv.Need(tb, testenv.VTest)
	vc, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		tb.Fatalf("opening %s: %v", testenv.VTest, err)
	}
	defer vc.Close()
	img := gocv.NewMat()
	defer img.Close()
	var out []gocv.Mat
	for len(out) < n && vc.Read(&img) && !img.Empty() {
		f := gocv.NewMat()
		gocv.Resize(img, &f, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
		out = append(out, f)
	}
	if len(out) < n {
		closeAll(out)
		tb.Fatalf("read %d frames of %s, want %d", len(out), testenv.VTest, n)
	}
	return out
}

// synthFrames returns n frames of a moving pattern: a gradient background
// with moving stripes, a disc, a box and text; the caller closes them.
func synthFrames(n, w, h int) []gocv.Mat {
	out := make([]gocv.Mat, n)
	for i := range out {
		f := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
		for x := 0; x < w; x += 8 {
			c := uint8(255 * x / w)
			gocv.Rectangle(&f, image.Rect(x, 0, x+8, h), color.RGBA{c, uint8(255 - int(c)), 128, 0}, -1)
		}
		for y := (i * 2) % 32; y < h; y += 32 {
			gocv.Line(&f, image.Pt(0, y), image.Pt(w, y), color.RGBA{40, 40, 40, 0}, 2)
		}
		gocv.Circle(&f, image.Pt((i*7)%w, h/2), h/6, color.RGBA{250, 220, 30, 0}, -1)
		gocv.Rectangle(&f, image.Rect(w/4, (i*5)%h, w/4+w/8, (i*5)%h+h/8), color.RGBA{20, 60, 230, 0}, -1)
		gocv.PutText(&f, fmt.Sprintf("frame %d", i), image.Pt(10, h-10), gocv.FontHersheySimplex, 0.8, color.RGBA{255, 255, 255, 0}, 2)
		// Soften edges as a camera's optics do; sharp edges between
		// saturated colours alone cost I420 (half-resolution colour)
		// several dB of PSNR before any compression.
		gocv.GaussianBlur(f, &f, image.Pt(5, 5), 0, 0, gocv.BorderReflect101)
		out[i] = f
	}
	return out
}

func closeAll(ms []gocv.Mat) {
	for i := range ms {
		ms[i].Close()
	}
}

// psnr is the peak signal-to-noise ratio of b against a (same size and
// type, continuous), in dB; +Inf when equal.
func psnr(tb testing.TB, a, b gocv.Mat) float64 {
	tb.Helper()
	if a.Rows() != b.Rows() || a.Cols() != b.Cols() || a.Type() != b.Type() {
		tb.Fatalf("psnr: %dx%d %v vs %dx%d %v", a.Cols(), a.Rows(), a.Type(), b.Cols(), b.Rows(), b.Type())
	}
	pa, err := a.DataPtrUint8()
	if err != nil {
		tb.Fatal(err)
	}
	pb, err := b.DataPtrUint8()
	if err != nil {
		tb.Fatal(err)
	}
	var sse float64
	for i := range pa {
		d := float64(pa[i]) - float64(pb[i])
		sse += d * d
	}
	if sse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(sse/float64(len(pa))))
}

func goodOptions() Options {
	return Options{Width: 640, Height: 480, FPS: 25, BitrateKbps: 1500}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Options)
		field string // "" means valid
	}{
		{"valid", func(o *Options) {}, ""},
		{"defaults", func(o *Options) { o.KeyframeInterval, o.Threads = 0, 0 }, ""},
		{"max size", func(o *Options) { o.Width, o.Height = 4096, 4096 }, ""},
		{"odd width", func(o *Options) { o.Width = 641 }, "Width"},
		{"zero width", func(o *Options) { o.Width = 0 }, "Width"},
		{"huge width", func(o *Options) { o.Width = 4098 }, "Width"},
		{"tiny height", func(o *Options) { o.Height = 8 }, "Height"},
		{"odd height", func(o *Options) { o.Height = 481 }, "Height"},
		{"zero fps", func(o *Options) { o.FPS = 0 }, "FPS"},
		{"NaN fps", func(o *Options) { o.FPS = math.NaN() }, "FPS"},
		{"huge fps", func(o *Options) { o.FPS = 1000 }, "FPS"},
		{"low bitrate", func(o *Options) { o.BitrateKbps = 10 }, "BitrateKbps"},
		{"high bitrate", func(o *Options) { o.BitrateKbps = 1 << 20 }, "BitrateKbps"},
		{"negative keyframe", func(o *Options) { o.KeyframeInterval = -1 }, "KeyframeInterval"},
		{"huge keyframe", func(o *Options) { o.KeyframeInterval = 1e6 }, "KeyframeInterval"},
		{"negative threads", func(o *Options) { o.Threads = -2 }, "Threads"},
		{"many threads", func(o *Options) { o.Threads = 64 }, "Threads"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := goodOptions()
			c.edit(&o)
			err := o.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", o)
			}
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), c.field+" = ") || !strings.Contains(err.Error(), "must be") {
				t.Fatalf("Validate = %q, want ErrOptions naming %s and the allowed range", err, c.field)
			}
			e, err := NewEncoder(o)
			if err == nil {
				e.Close()
				t.Fatalf("NewEncoder accepted %+v", o)
			}
			if !errors.Is(err, ErrOptions) {
				t.Fatalf("NewEncoder = %v, want ErrOptions", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	e, err := NewEncoder(Options{Width: 320, Height: 240, FPS: 15, BitrateKbps: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if o := e.Options(); o.KeyframeInterval != 30 || o.Threads != 1 {
		t.Fatalf("defaults: KeyframeInterval %d, Threads %d; want 30, 1", o.KeyframeInterval, o.Threads)
	}
}

// TestEncodeDecode encodes 30 frames, forcing a keyframe at frame 15,
// decodes them and compares them with the input.
func TestEncodeDecode(t *testing.T) {
	const n, forced = 30, 15
	cases := []struct {
		name   string
		frames func(testing.TB) []gocv.Mat
		opt    Options
	}{
		{"vtest 640x480", func(tb testing.TB) []gocv.Mat { return vtestFrames(tb, n, 640, 480) },
			Options{Width: 640, Height: 480, FPS: 25, BitrateKbps: 1500, KeyframeInterval: 300}},
		{"synthetic 320x240 2 threads", func(testing.TB) []gocv.Mat { return synthFrames(n, 320, 240) },
			Options{Width: 320, Height: 240, FPS: 30, BitrateKbps: 800, KeyframeInterval: 300, Threads: 2}},
		{"synthetic 1280x720 fractional fps", func(testing.TB) []gocv.Mat { return synthFrames(n, 1280, 720) },
			Options{Width: 1280, Height: 720, FPS: 29.97, BitrateKbps: 2500, KeyframeInterval: 300, Threads: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.frames(t)
			defer closeAll(in)
			enc, err := NewEncoder(c.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			dec, err := NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			out := gocv.NewMat()
			defer out.Close()

			var total, dropped, good, decoded int
			var psnrs []string
			for i, f := range in {
				fr, err := enc.Encode(f, i == forced)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if fr.PTS != int64(i) {
					t.Errorf("frame %d: PTS %d", i, fr.PTS)
				}
				if (i == 0 || i == forced) && !fr.Key {
					t.Errorf("frame %d: not a keyframe (%d bytes)", i, len(fr.Data))
				}
				if i != 0 && i != forced && fr.Key {
					t.Errorf("frame %d: unexpected keyframe", i)
				}
				if len(fr.Data) == 0 {
					dropped++
					continue
				}
				total += len(fr.Data)
				if err := dec.Decode(fr.Data, &out); err != nil {
					t.Fatalf("decoding frame %d: %v", i, err)
				}
				decoded++
				p := psnr(t, f, out)
				psnrs = append(psnrs, fmt.Sprintf("%.1f", p))
				if p >= 28 {
					good++
				}
			}
			seconds := float64(n) / c.opt.FPS
			kbps := float64(total) * 8 / 1000 / seconds
			t.Logf("%d bytes, %.0f kbps (target %d), %d dropped, PSNR %v", total, kbps, c.opt.BitrateKbps, dropped, psnrs)
			if kbps < 0.2*float64(c.opt.BitrateKbps) || kbps > 2.5*float64(c.opt.BitrateKbps) {
				t.Errorf("%.0f kbps over %d frames, want near the %d kbps target", kbps, n, c.opt.BitrateKbps)
			}
			if dropped > n/10 {
				t.Errorf("%d of %d frames dropped", dropped, n)
			}
			if good < decoded*9/10 {
				t.Errorf("PSNR >= 28 dB in %d of %d decoded frames, want 90%%", good, decoded)
			}
		})
	}
}

func TestKeyframeInterval(t *testing.T) {
	in := synthFrames(35, 160, 120)
	defer closeAll(in)
	enc, err := NewEncoder(Options{Width: 160, Height: 120, FPS: 10, BitrateKbps: 200, KeyframeInterval: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	last := -1
	for i, f := range in {
		fr, err := enc.Encode(f, false)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if fr.Key {
			last = i
		}
		if i-last > 10 {
			t.Fatalf("frame %d: %d frames since the last keyframe, interval 10", i, i-last)
		}
	}
}

// TestDroppedFrames starves the encoder (noise, which does not compress) so it
// drops frames: a dropped frame is empty, PTS still advances, and the
// decoder goes on with the frames that were sent.
func TestDroppedFrames(t *testing.T) {
	enc, err := NewEncoder(Options{Width: 320, Height: 240, FPS: 30, BitrateKbps: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	noise := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC3)
	defer noise.Close()
	out := gocv.NewMat()
	defer out.Close()
	dropped := 0
	for i := 0; i < 30; i++ {
		gocv.RandU(&noise, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
		fr, err := enc.Encode(noise, false)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if fr.PTS != int64(i) {
			t.Fatalf("frame %d: PTS %d", i, fr.PTS)
		}
		if len(fr.Data) == 0 {
			dropped++
			continue
		}
		if err := dec.Decode(fr.Data, &out); err != nil {
			t.Fatalf("decoding frame %d after %d drops: %v", i, dropped, err)
		}
		if out.Cols() != 320 || out.Rows() != 240 || out.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("decoded %dx%d %v", out.Cols(), out.Rows(), out.Type())
		}
	}
	if dropped == 0 {
		t.Fatalf("no frame dropped at 1000 kbps of noise")
	}
	t.Logf("%d of 30 frames dropped", dropped)
}

func TestEncodeBadFrame(t *testing.T) {
	enc, err := NewEncoder(Options{Width: 160, Height: 120, FPS: 10, BitrateKbps: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	cases := []struct {
		name string
		mat  func() gocv.Mat
	}{
		{"empty", gocv.NewMat},
		{"too wide", func() gocv.Mat { return gocv.NewMatWithSize(120, 162, gocv.MatTypeCV8UC3) }},
		{"too short", func() gocv.Mat { return gocv.NewMatWithSize(118, 160, gocv.MatTypeCV8UC3) }},
		{"transposed", func() gocv.Mat { return gocv.NewMatWithSize(160, 120, gocv.MatTypeCV8UC3) }},
		{"gray", func() gocv.Mat { return gocv.NewMatWithSize(120, 160, gocv.MatTypeCV8UC1) }},
		{"BGRA", func() gocv.Mat { return gocv.NewMatWithSize(120, 160, gocv.MatTypeCV8UC4) }},
		{"float", func() gocv.Mat { return gocv.NewMatWithSize(120, 160, gocv.MatTypeCV32FC3) }},
		{"I420 already", func() gocv.Mat { return gocv.NewMatWithSize(180, 160, gocv.MatTypeCV8UC1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.mat()
			defer m.Close()
			if _, err := enc.Encode(m, false); !errors.Is(err, ErrFrame) {
				t.Fatalf("Encode = %v, want ErrFrame", err)
			}
		})
	}
	// The encoder still works, and a region of a larger frame (not
	// continuous) is a valid frame.
	big := synthFrames(1, 320, 240)
	defer closeAll(big)
	roi := big[0].Region(image.Rect(10, 20, 170, 140))
	defer roi.Close()
	fr, err := enc.Encode(roi, false)
	if err != nil || !fr.Key || len(fr.Data) == 0 {
		t.Fatalf("Encode after bad frames = %d bytes, key %v, %v; want a keyframe", len(fr.Data), fr.Key, err)
	}
}

func TestClose(t *testing.T) {
	enc, err := NewEncoder(Options{Width: 64, Height: 48, FPS: 10, BitrateKbps: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	f := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC3)
	defer f.Close()
	if _, err := enc.Encode(f, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Encode after Close = %v, want ErrClosed", err)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dec.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := dec.Decode([]byte{1}, &f); !errors.Is(err, ErrClosed) {
		t.Fatalf("Decode after Close = %v, want ErrClosed", err)
	}
}

func TestDecodeBad(t *testing.T) {
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out := gocv.NewMat()
	defer out.Close()
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(i * 31)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x9d}},
		{"garbage", garbage},
		{"truncated keyframe header", []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := dec.Decode(c.data, &out); err == nil {
				t.Fatalf("Decode(%d bytes) succeeded", len(c.data))
			}
		})
	}
}

func benchmarkEncode(b *testing.B, w, h int) {
	frames := vtestFrames(b, 50, w, h)
	defer closeAll(frames)
	enc, err := NewEncoder(Options{Width: w, Height: h, FPS: 25, BitrateKbps: 1500})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	var bytes int
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		fr, err := enc.Encode(frames[i%len(frames)], false)
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(fr.Data)
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/frame")
	b.ReportMetric(float64(bytes)/float64(b.N), "B/frame")
}

func BenchmarkEncode640x480(b *testing.B) { benchmarkEncode(b, 640, 480) }
func BenchmarkEncode768x576(b *testing.B) { benchmarkEncode(b, 768, 576) }
