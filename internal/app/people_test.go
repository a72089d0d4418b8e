package app_test

import (
	"bytes"
	"errors"
	"image"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestPeopleCounterFallback: with footfall.detector people, a missing or
// tampered person model makes the counter count moving blobs instead, with
// a warning that names the model and the fix and a CounterKind that says
// so (never a silent switch); a good model gives the people tracker.
func TestPeopleCounterFallback(t *testing.T) {
	lines := []footfall.Line{{Name: "door", A: image.Pt(350, 150), B: image.Pt(350, 450)}}
	cfg := config.Default.Footfall
	for _, c := range []struct {
		name             string
		corrupt, missing bool
		want             string
		wantErr          error
	}{
		{"good model", false, false, config.DetectPeople, nil},
		{"missing model", false, true, config.DetectMotion, models.ErrMissing},
		{"tampered model", true, false, config.DetectMotion, models.ErrHashMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := testenv.ModelsCopy(t, app.PersonModel, c.corrupt, c.missing)
			newPeople, modelErr := app.LocalPeople(cfg, dir)
			if !errors.Is(modelErr, c.wantErr) {
				t.Fatalf("LocalPeople: %v, want %v", modelErr, c.wantErr)
			}
			var logs bytes.Buffer
			cnt, kind, err := app.PeopleCounter(cfg, lines, false, newPeople, modelErr, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer cnt.Close()
			if kind.Detector != c.want || (kind.Fallback != "") != (c.wantErr != nil) {
				t.Errorf("kind %+v, want detector %s", kind, c.want)
			}
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "veil models fetch") &&
				strings.Contains(logs.String(), app.PersonModel)
			if warned != (c.wantErr != nil) {
				t.Errorf("warning logged: %v, want %v:\n%s", warned, c.wantErr != nil, logs.String())
			}
			frame := gocv.NewMatWithSize(576, 768, gocv.MatTypeCV8UC3)
			defer frame.Close()
			if _, err := cnt.Frame(frame, 100*time.Millisecond); err != nil {
				t.Errorf("counting a frame: %v", err)
			}
		})
	}
	motion := cfg
	motion.Detector = config.DetectMotion
	cnt, kind, err := app.PeopleCounter(motion, lines, false, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cnt.Close()
	if kind != (app.CounterKind{Detector: config.DetectMotion}) {
		t.Errorf("footfall.detector motion: %+v", kind)
	}
	// Without lines it tracks people (for redact.target heads and bodies)
	// whatever footfall.detector says.
	newPeople, err := app.LocalPeople(cfg, testenv.ModelsCopy(t, "", false, false))
	if err != nil {
		t.Fatal(err)
	}
	cnt, kind, err = app.PeopleCounter(motion, nil, false, newPeople, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cnt.Close()
	if kind.Detector != config.DetectPeople {
		t.Errorf("no lines, footfall.detector motion: %+v, want the person detector", kind)
	}
	bad := cfg
	bad.Detector = "hog"
	if _, _, err := app.PeopleCounter(bad, lines, false, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "footfall.detector") {
		t.Errorf("unknown detector: %v", err)
	}
}

// TestPeopleCounterSSDLite: footfall.person_model ssdlite loads the
// ssdlite-person model and counts with it through PeopleCounter, as veil
// count does. On vtest.avi's first 245 frames line L1 of
// testdata/footfall/vtest_truth.json is crossed 4 times in (frames 63,
// 163, 183, 225) and twice out (13, 99); ssdlite at person_score 0.5
// counted 4 in and 3 out when this was written, and may be off by that one.
func TestPeopleCounterSSDLite(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	cfg := config.Default.Footfall
	cfg.PersonModel = config.PersonSSDLite
	cfg.PersonScore = 0.5
	if got := app.PersonModelEntry(cfg); got != app.SSDLitePersonModel {
		t.Fatalf("model entry %q", got)
	}
	newPeople, modelErr := app.LocalPeople(cfg, testenv.ModelsDir())
	if modelErr != nil {
		testenv.Missing(t, modelErr.Error())
	}
	lines := []footfall.Line{{Name: "L1", A: image.Pt(350, 150), B: image.Pt(350, 450)}}
	cnt, kind, err := app.PeopleCounter(cfg, lines, false, newPeople, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cnt.Close()
	if kind != (app.CounterKind{Detector: config.DetectPeople}) {
		t.Errorf("kind %+v", kind)
	}
	vc, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	in, out := 0, 0
	for i := 0; i < 245 && vc.Read(&frame); i++ {
		cr, err := cnt.Frame(frame, time.Duration(i)*100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cr {
			switch c.Dir {
			case footfall.In:
				in++
			case footfall.Out:
				out++
			}
		}
	}
	t.Logf("L1 over frames 0-244 with ssdlite: in %d, out %d (hand count 4, 2)", in, out)
	if e := abs(in-4) + abs(out-2); e > 1 {
		t.Errorf("in %d, out %d: off by %d from 4, 2; at most 1 allowed", in, out, e)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
