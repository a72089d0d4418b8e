package synth_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/veil-edge/veil/internal/synth"
)

// Generate a 60-frame labelled clip on vtest.avi and read its labels back.
func ExampleGenerate() {
	dir, err := os.MkdirTemp("", "veil-synth")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	video := filepath.Join(dir, "clip.avi")
	labels, err := synth.Generate(context.Background(), synth.Params{Seed: 42, Frames: 60}, video)
	if err != nil {
		log.Fatal(err)
	}
	back, err := synth.LoadLabels(synth.LabelsPath(video)) // labels.json next to the video
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range back.Frame(0) {
		fmt.Printf("face %d: box %v, %.0f px wide, turned %.0f degrees (%s)\n", f.ID, f.Box, f.Width, f.Angle, f.Source)
	}
	fmt.Println(labels.Count(), "boxes in", len(labels.Frames), "frames")
}
