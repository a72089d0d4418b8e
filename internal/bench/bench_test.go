package bench_test

import (
	"context"
	"image"
	"os"
	"strings"
	"testing"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/bench"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/testkit/testenv"
)

// BenchmarkStages runs the whole bench once per iteration and reports the
// fps of every stage as custom metrics (e.g. "768x576-whole_pipeline_+_encode-fps").
//
//	go test -tags matprofile -run XXX -bench Stages -benchtime 1x ./internal/bench/
func BenchmarkStages(b *testing.B) {
	testenv.Need(b, testenv.VTest)
	svc, err := app.FaceService(app.DefaultDetect(), testenv.ModelsDir())
	if err != nil {
		testenv.Missing(b, err.Error())
	}
	fo := app.FrameOptions(app.DefaultDetect())
	det := func() (detect.Detector, error) { return detect.NewFrame(svc, fo) }
	every := pipeline.DefaultOptions.Every
	if e := os.Getenv("VEIL_BENCH_EVERY"); e != "" {
		every = int(e[0] - '0')
	}
	o := bench.Options{
		Input: testenv.VTest, Sizes: []image.Point{{768, 576}, {1280, 720}}, Frames: 800,
		Detector: det, Service: svc, Frame: fo, Redact: blur.DefaultOptions, TempDir: b.TempDir(),
		Pipeline: pipeline.Options{Every: every, Workers: 2, Deadline: pipeline.DefaultOptions.Deadline, Lookahead: pipeline.DefaultOptions.Lookahead, Track: pipeline.DefaultOptions.Track},
	}
	var rep bench.Report
	for i := 0; i < b.N; i++ {
		rep, err = bench.Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, r := range rep.Results {
		b.ReportMetric(r.FPS, r.Size+"-"+strings.ReplaceAll(strings.ReplaceAll(r.Stage, " ", "_"), ",", "")+"-fps")
	}
	b.ReportMetric(rep.PeakRSSMB, "peak-RSS-MB")
	b.Log("\n" + rep.String())
}

// TestBenchSmoke checks that the bench measures every stage on a short clip.
func TestBenchSmoke(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	svc, err := app.FaceService(app.DefaultDetect(), testenv.ModelsDir())
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	fo := app.FrameOptions(app.DefaultDetect())
	det := func() (detect.Detector, error) { return detect.NewFrame(svc, fo) }
	rep, err := bench.Run(context.Background(), bench.Options{
		Input: testenv.VTest, Sizes: []image.Point{{320, 240}}, Frames: 8,
		Detector: det, Service: svc, Frame: fo, Redact: blur.DefaultOptions, TempDir: t.TempDir(), Pipeline: pipeline.DefaultOptions,
	})
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{}
	for _, r := range rep.Results {
		stages[r.Stage] = true
		if r.Frames == 0 || r.FPS <= 0 {
			t.Errorf("stage %q measured nothing: %+v", r.Stage, r)
		}
	}
	for _, s := range []string{"decode", "detect fine pass", "detect coarse passes", "detect full search", "detect banded (keyframes)", "redact", "count (footfall)", "encode mp4v", "whole pipeline (no encode)", "whole pipeline + encode"} {
		if !stages[s] {
			t.Errorf("stage %q missing from report", s)
		}
	}
}
