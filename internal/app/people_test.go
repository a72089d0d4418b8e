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
			dir := copyModels(t, app.PersonModel, c.corrupt, c.missing)
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
	bad := cfg
	bad.Detector = "hog"
	if _, _, err := app.PeopleCounter(bad, lines, false, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "footfall.detector") {
		t.Errorf("unknown detector: %v", err)
	}
}
