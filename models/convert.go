package models

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/veil-edge/veil/models/tfgraph"
)

// A converter makes a model file from its pinned source files, keyed by
// their paths in the package. It must be deterministic: its output is
// pinned by hash like any other model file.
type converter func(files map[string][]byte, src Source) ([]byte, error)

// converters are the conversions a manifest entry may name in
// source.convert.
var converters = map[string]converter{
	"tfjs-centernet-person": convertCenterNetPerson,
}

func converterNames() []string {
	names := make([]string, 0, len(converters))
	for n := range converters {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// convert checks each of the entry's source files against its pin, then
// runs the entry's converter over them.
func convert(e Entry, files map[string][]byte, log *slog.Logger) ([]byte, error) {
	in := make(map[string][]byte, len(e.Source.Files))
	for _, f := range e.Source.Files {
		b, ok := files[f.Path]
		if !ok {
			return nil, fmt.Errorf("%s: %w: not in the package", f.Path, ErrMissing)
		}
		if got := sha256Hex(b); got != f.SHA256 {
			return nil, fmt.Errorf("%s: %w: want %s, got %s; nothing was converted", f.Path, ErrHashMismatch, f.SHA256, got)
		}
		in[f.Path] = b
	}
	start := time.Now()
	out, err := converters[e.Source.Convert](in, e.Source)
	if err != nil {
		return nil, fmt.Errorf("convert (%s): %w", e.Source.Convert, err)
	}
	log.Info("converted model", "model", e.Name, "converter", e.Source.Convert, "bytes", len(out), "took", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// CenterNet's class head and outputs, as named in the TFJS graph of
// @vladmandic/human's centernet.json (a MobileNetV3 CenterNet trained on
// COCO, whose class 0 is "person").
const (
	centerNetClassHead = "tower_0/CenternetHead/centernet_cls_output/BiasAdd"
	centerNetHeatmap   = "tower_0/keypoints"
	centerNetBoxes     = "tower_0/wh"
)

// convertCenterNetPerson turns the TFJS CenterNet (source.files: the
// model.json, then its weights) into a GraphDef OpenCV reads that keeps the
// heat map and box distances and drops the top-k decoding, with the class
// head narrowed to the person class. The input stays as in the source
// (1x512x512x3); detect resizes it per network.
func convertCenterNetPerson(files map[string][]byte, src Source) ([]byte, error) {
	if len(src.Files) != 2 {
		return nil, fmt.Errorf("want 2 source files (model.json, weights), got %d", len(src.Files))
	}
	g, err := tfgraph.ConvertTFJS(files[src.Files[0].Path], files[src.Files[1].Path], tfgraph.ConvertOptions{
		Outputs:      []string{centerNetHeatmap, centerNetBoxes},
		KeepChannels: map[string][]int{centerNetClassHead: {0}},
	})
	if err != nil {
		return nil, err
	}
	return g.Marshal(), nil
}
