package blur

import (
	"image"
	"image/color"
	"math"
	"reflect"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func TestOptionsValidate(t *testing.T) {
	with := func(f func(*Options)) Options {
		o := DefaultOptions
		f(&o)
		return o
	}
	for _, tc := range []struct {
		name string
		opts Options
		// want holds substrings of the error, one per invalid field; none
		// means valid.
		want []string
	}{
		{"defaults", DefaultOptions, nil},
		{"floor", with(func(o *Options) { o.Padding, o.SigmaDivisor, o.MosaicBlocks = 0.2, 6, 6 }), nil},
		{"strongest", with(func(o *Options) { o.Padding, o.SigmaDivisor, o.MosaicBlocks = 1, 1, 2 }), nil},
		{"every style and shape", with(func(o *Options) { o.Style, o.Shape = Fill, Box }), nil},
		{"mosaic", with(func(o *Options) { o.Style = Mosaic }), nil},

		{"unknown style", with(func(o *Options) { o.Style = "pixelate" }),
			[]string{`style: "pixelate" is not supported; allowed gaussian, mosaic, fill`}},
		{"empty style", with(func(o *Options) { o.Style = "" }), []string{`style: ""`}},
		{"style is case sensitive", with(func(o *Options) { o.Style = "Gaussian" }), []string{`style: "Gaussian"`}},
		{"unknown shape", with(func(o *Options) { o.Shape = "circle" }),
			[]string{`shape: "circle" is not supported; allowed box, ellipse`}},
		{"padding below floor", with(func(o *Options) { o.Padding = 0.1 }),
			[]string{"padding: 0.1 is weaker than the floor; allowed 0.2..1"}},
		{"padding zero", with(func(o *Options) { o.Padding = 0 }), []string{"padding: 0 is weaker than the floor"}},
		{"padding just below floor", with(func(o *Options) { o.Padding = 0.19999 }), []string{"padding: 0.19999 is weaker"}},
		{"padding above range", with(func(o *Options) { o.Padding = 1.5 }),
			[]string{"padding: 1.5 is out of range; allowed 0.2..1"}},
		{"padding NaN", with(func(o *Options) { o.Padding = math.NaN() }), []string{"padding: NaN is not a finite number"}},
		{"padding +Inf", with(func(o *Options) { o.Padding = math.Inf(1) }), []string{"padding: +Inf is not a finite number"}},
		{"sigma_divisor weaker than floor", with(func(o *Options) { o.SigmaDivisor = 8 }),
			[]string{"sigma_divisor: 8 is weaker than the floor; allowed 1..6"}},
		{"sigma_divisor just weaker", with(func(o *Options) { o.SigmaDivisor = 6.01 }), []string{"sigma_divisor: 6.01 is weaker"}},
		{"sigma_divisor below range", with(func(o *Options) { o.SigmaDivisor = 0.5 }),
			[]string{"sigma_divisor: 0.5 is out of range; allowed 1..6"}},
		{"sigma_divisor zero", with(func(o *Options) { o.SigmaDivisor = 0 }), []string{"sigma_divisor: 0 is out of range"}},
		{"sigma_divisor NaN", with(func(o *Options) { o.SigmaDivisor = math.NaN() }), []string{"sigma_divisor: NaN"}},
		{"mosaic_blocks weaker than floor", with(func(o *Options) { o.MosaicBlocks = 7 }),
			[]string{"mosaic_blocks: 7 is weaker than the floor; allowed 2..6"}},
		{"mosaic_blocks below range", with(func(o *Options) { o.MosaicBlocks = 1 }),
			[]string{"mosaic_blocks: 1 is out of range; allowed 2..6"}},
		{"mosaic_blocks negative", with(func(o *Options) { o.MosaicBlocks = -3 }), []string{"mosaic_blocks: -3 is out of range"}},
		// Strength fields are checked whatever the style.
		{"weak sigma with fill", with(func(o *Options) { o.Style, o.SigmaDivisor = Fill, 10 }), []string{"sigma_divisor: 10 is weaker"}},
		{"zero options", Options{}, []string{"style:", "shape:", "padding:", "sigma_divisor:", "mosaic_blocks:"}},
		{"every field bad", Options{Style: "x", Shape: "y", Padding: 0.01, SigmaDivisor: 100, MosaicBlocks: 64},
			[]string{`style: "x"`, `shape: "y"`, "padding: 0.01 is weaker", "sigma_divisor: 100 is weaker", "mosaic_blocks: 64 is weaker"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Validate() = %q, want it to contain %q", msg, w)
				}
			}
			if lines := strings.Count(msg, "\n") + 1; lines != len(tc.want) {
				t.Errorf("Validate() reported %d problems, want %d:\n%s", lines, len(tc.want), msg)
			}
			if msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("message %q does not start lower-case", msg)
			}
		})
	}
}

func TestNewRedactorRejectsInvalidOptions(t *testing.T) {
	checkNoMatLeak(t)
	o := DefaultOptions
	o.SigmaDivisor = 12
	r, err := NewRedactor(o)
	if err == nil {
		_ = r.Close()
		t.Fatal("NewRedactor accepted sigma_divisor 12")
	}
	if r != nil {
		t.Errorf("NewRedactor returned a Redactor with error %v", err)
	}
	if !strings.Contains(err.Error(), "sigma_divisor: 12") {
		t.Errorf("error %q does not name the field and value", err)
	}
}

func TestDefaultOptions(t *testing.T) {
	if err := DefaultOptions.Validate(); err != nil {
		t.Fatalf("DefaultOptions invalid: %v", err)
	}
	r := mustRedactor(t, DefaultOptions)
	if got := r.Options(); !reflect.DeepEqual(got, DefaultOptions) {
		t.Errorf("Options() = %+v, want %+v", got, DefaultOptions)
	}
}

// TestMasksAlwaysFilled: a mask is filled in every frame, with or without
// faces, and an invalid mask is refused naming it.
func TestMasksAlwaysFilled(t *testing.T) {
	o := DefaultOptions
	o.FillColor = color.RGBA{R: 10, G: 20, B: 30}
	o.Masks = []image.Rectangle{image.Rect(5, 5, 25, 15), image.Rect(90, 40, 200, 200)} // the second runs off the frame
	r := mustRedactor(t, o)
	for _, plan := range []Plan{FacesPlan(nil), FacesPlan([]image.Rectangle{image.Rect(40, 20, 60, 40)})} {
		m := gocv.NewMatWithSize(60, 100, gocv.MatTypeCV8UC3)
		m.SetTo(gocv.NewScalar(200, 200, 200, 0))
		f, err := r.Redact(m, plan)
		if err != nil {
			t.Fatal(err)
		}
		out := f.CloneMat()
		for _, p := range []image.Point{{5, 5}, {24, 14}, {90, 40}, {99, 59}} {
			if b, g, rr := out.GetUCharAt(p.Y, p.X*3), out.GetUCharAt(p.Y, p.X*3+1), out.GetUCharAt(p.Y, p.X*3+2); b != 30 || g != 20 || rr != 10 {
				t.Errorf("masked pixel %v = %d,%d,%d, want the fill colour", p, b, g, rr)
			}
		}
		if v := out.GetUCharAt(30, 10*3); v != 200 {
			t.Errorf("pixel outside masks and faces changed: %d", v)
		}
		out.Close()
		f.Close()
	}
	bad := DefaultOptions
	bad.Masks = []image.Rectangle{image.Rect(10, 10, 10, 20)}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "masks[0]") {
		t.Errorf("empty mask: %v", err)
	}
}

// TestReadBorrowsPixels: Read shows the redacted pixels without a copy and
// refuses an empty frame.
func TestReadBorrowsPixels(t *testing.T) {
	r := mustRedactor(t, DefaultOptions)
	m := gocv.NewMatWithSize(20, 30, gocv.MatTypeCV8UC3)
	m.SetTo(gocv.NewScalar(7, 8, 9, 0))
	f, err := r.Redact(m, FacesPlan(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got [3]uint8
	if err := f.Read(func(p gocv.Mat) error {
		got = [3]uint8{p.GetUCharAt(5, 15*3), p.GetUCharAt(5, 15*3+1), p.GetUCharAt(5, 15*3+2)}
		return nil
	}); err != nil || got != [3]uint8{7, 8, 9} {
		t.Fatalf("Read = %v, %v", got, err)
	}
	var empty Redacted
	if err := empty.Read(func(gocv.Mat) error { return nil }); err == nil {
		t.Error("Read of an empty frame succeeded")
	}
}
