package leak_test

import (
	"fmt"
	"log"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/internal/synth"
)

// Score a redacted video against the labels of the generated input.
func ExampleAccumulator() {
	labels, err := synth.LoadLabels("testdata/generated/labels.json")
	if err != nil {
		log.Fatal(err)
	}
	in, err := gocv.VideoCaptureFile("testdata/generated/" + labels.Video)
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	out, err := gocv.VideoCaptureFile("redacted.avi")
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	a, b := gocv.NewMat(), gocv.NewMat()
	defer a.Close()
	defer b.Close()
	var acc leak.Accumulator
	for i := 0; in.Read(&a) && out.Read(&b); i++ {
		// The redactor pads boxes by 25 %; count changes beyond 30 %.
		acc.Add(leak.Compare(a, b, labels.Frame(i), 0.3))
	}
	fmt.Print(acc.Report())
}
