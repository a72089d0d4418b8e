package tfgraph

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestHalfToFloat(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.33325195}, {0x7bff, 65504},
		{0x0001, 5.9604645e-08}, {0x03ff, 6.097555e-05}, {0x8001, -5.9604645e-08},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := HalfToFloat(c.h); got != c.want {
			t.Errorf("HalfToFloat(%#04x) = %g, want %g", c.h, got, c.want)
		}
	}
	if got := HalfToFloat(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("HalfToFloat(NaN) = %g", got)
	}
	if got := HalfToFloat(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("HalfToFloat(-0) = %g", got)
	}
}

// tinyModel is a TFJS graph model: input -> fused conv (BiasAdd, Relu6) ->
// resize to a constant size -> concat with itself on a constant axis;
// plus a node nothing asked for.
func tinyModel(t *testing.T) (modelJSON, weights []byte) {
	t.Helper()
	s := func(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }
	m := map[string]any{
		"format": "graph-model",
		"modelTopology": map[string]any{"node": []any{
			map[string]any{"name": "x", "op": "Placeholder", "attr": map[string]any{
				"dtype": map[string]any{"type": "DT_FLOAT"},
				"shape": map[string]any{"shape": map[string]any{"dim": []any{map[string]any{"size": "1"}, map[string]any{"size": "8"}, map[string]any{"size": "8"}, map[string]any{"size": "3"}}}}}},
			map[string]any{"name": "w", "op": "Const", "attr": map[string]any{"dtype": map[string]any{"type": "DT_FLOAT"}, "value": map[string]any{"tensor": map[string]any{"dtype": "DT_FLOAT"}}}},
			map[string]any{"name": "b", "op": "Const", "attr": map[string]any{"dtype": map[string]any{"type": "DT_FLOAT"}, "value": map[string]any{"tensor": map[string]any{"dtype": "DT_FLOAT"}}}},
			map[string]any{"name": "size", "op": "Const", "attr": map[string]any{"dtype": map[string]any{"type": "DT_INT32"}, "value": map[string]any{"tensor": map[string]any{"dtype": "DT_INT32"}}}},
			map[string]any{"name": "axis", "op": "Const", "attr": map[string]any{"dtype": map[string]any{"type": "DT_INT32"}, "value": map[string]any{"tensor": map[string]any{"dtype": "DT_INT32"}}}},
			map[string]any{"name": "conv", "op": "_FusedConv2D", "input": []any{"x", "w", "b"}, "attr": map[string]any{
				"T": map[string]any{"type": "DT_FLOAT"}, "num_args": map[string]any{"i": "1"}, "epsilon": map[string]any{"f": 0},
				"strides": map[string]any{"list": map[string]any{"i": []any{"1", "2", "2", "1"}}}, "padding": map[string]any{"s": s("SAME")},
				"data_format": map[string]any{"s": s("NHWC")}, "fused_ops": map[string]any{"list": map[string]any{"s": []any{s("BiasAdd"), s("Relu6")}}},
				"_grappler_hint": map[string]any{"b": true}}},
			map[string]any{"name": "up", "op": "ResizeBilinear", "input": []any{"conv", "size"}, "attr": map[string]any{"align_corners": map[string]any{"b": false}}},
			map[string]any{"name": "cat", "op": "ConcatV2", "input": []any{"up", "up", "axis"}, "attr": map[string]any{"N": map[string]any{"i": "2"}}},
			map[string]any{"name": "unused", "op": "Sigmoid", "input": []any{"cat"}},
		}},
		"weightsManifest": []any{map[string]any{"paths": []any{"w.bin"}, "weights": []any{
			map[string]any{"name": "w", "shape": []any{1, 1, 3, 2}, "dtype": "float32", "quantization": map[string]any{"dtype": "float16", "original_dtype": "float32"}},
			map[string]any{"name": "b", "shape": []any{2}, "dtype": "float32"},
			map[string]any{"name": "size", "shape": []any{2}, "dtype": "int32"},
			map[string]any{"name": "axis", "shape": []any{}, "dtype": "int32"},
		}}},
	}
	j, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var w []byte
	for _, h := range []uint16{0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600} { // 1..6 as float16
		w = binary.LittleEndian.AppendUint16(w, h)
	}
	w = binary.LittleEndian.AppendUint32(w, math.Float32bits(0.5))
	w = binary.LittleEndian.AppendUint32(w, math.Float32bits(-0.5))
	w = binary.LittleEndian.AppendUint32(w, 4) // the conv's stride-2 output size
	w = binary.LittleEndian.AppendUint32(w, 4)
	w = binary.LittleEndian.AppendUint32(w, 3)
	return j, w
}

func TestConvertTFJS(t *testing.T) {
	j, w := tinyModel(t)
	g, err := ConvertTFJS(j, w, ConvertOptions{Outputs: []string{"cat"}, KeepChannels: map[string][]int{"conv": {1}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range g.Nodes {
		got = append(got, n.Name+":"+n.Op+"("+strings.Join(n.Inputs, ",")+")")
	}
	want := []string{"x:Placeholder()", "w:Const()", "b:Const()", "conv/conv:Conv2D(x,w)", "conv/bias_add:BiasAdd(conv/conv,b)",
		"conv:Relu6(conv/bias_add)", "size:Const()", "up:ResizeBilinear(conv,size)", "axis:Const()", "cat:ConcatV2(up,up,axis)"}
	if !slices.Equal(got, want) {
		t.Errorf("nodes:\n got %v\nwant %v", got, want)
	}
	wt, _ := g.Find("w").Attrs["value"].Tensor.Floats()
	if !slices.Equal(wt, []float32{2, 4, 6}) || !slices.Equal(g.Find("w").Attrs["value"].Tensor.Shape, []int64{1, 1, 3, 1}) {
		t.Errorf("filter narrowed to channel 1: %v %v", wt, g.Find("w").Attrs["value"].Tensor.Shape)
	}
	if bt, _ := g.Find("b").Attrs["value"].Tensor.Floats(); !slices.Equal(bt, []float32{-0.5}) {
		t.Errorf("bias narrowed: %v", bt)
	}
	if a := g.Find("axis").Attrs["value"].Tensor; !slices.Equal(a.IntVal, []int32{3}) || a.Content != nil {
		t.Errorf("integer constants go to int_val: %+v", a)
	}
	conv := g.Find("conv/conv")
	if string(conv.Attrs["padding"].S) != "SAME" || !slices.Equal(conv.Attrs["strides"].List.I, []int64{1, 2, 2, 1}) {
		t.Errorf("conv attrs: %+v", conv.Attrs)
	}
	for _, k := range []string{"fused_ops", "num_args", "epsilon", "_grappler_hint"} {
		if _, ok := conv.Attrs[k]; ok {
			t.Errorf("conv keeps %s", k)
		}
	}
	b := g.Marshal()
	g2, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g2.Marshal(), b) {
		t.Error("Unmarshal(Marshal(g)) is not g")
	}
	again, _ := ConvertTFJS(j, w, ConvertOptions{Outputs: []string{"cat"}, KeepChannels: map[string][]int{"conv": {1}}})
	if !bytes.Equal(again.Marshal(), b) {
		t.Error("two conversions of the same model differ")
	}

	if err := g.Resize(16, 24); err != nil {
		t.Fatal(err)
	}
	if h, w, _ := g.InputSize(); h != 16 || w != 24 {
		t.Errorf("input %dx%d after Resize(16,24)", w, h)
	}
	if s := g.Find("size").Attrs["value"].Tensor.IntVal; !slices.Equal(s, []int32{8, 12}) {
		t.Errorf("resize size %v, want [8 12]", s)
	}
	if err := g.Resize(17, 24); err == nil {
		t.Error("Resize to a size the upsampling cannot follow was accepted")
	}
}

// TestConvertTFJSOlder reads the model.json of older TFJS converters (no
// format; bytes as arrays of numbers, types as numbers, empty lists of
// every kind) and cuts the graph at an input.
func TestConvertTFJSOlder(t *testing.T) {
	j, w := tinyModel(t)
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "format")
	conv := m["modelTopology"].(map[string]any)["node"].([]any)[5].(map[string]any)["attr"].(map[string]any)
	conv["padding"] = map[string]any{"s": []any{83, 65, 77, 69}}
	conv["T"] = map[string]any{"type": 1}
	conv["strides"] = map[string]any{"list": map[string]any{"s": []any{}, "i": []any{"1", "2", "2", "1"}, "f": []any{}, "b": []any{},
		"type": []any{}, "shape": []any{}, "tensor": []any{}, "func": []any{}}}
	older, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ConvertTFJS(j, w, ConvertOptions{Outputs: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ConvertTFJS(older, w, ConvertOptions{Outputs: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), want.Marshal()) {
		t.Error("the older model.json converts differently")
	}

	cut, err := ConvertTFJS(older, w, ConvertOptions{Outputs: []string{"cat"}, Inputs: map[string][]int64{"conv": {1, 4, 4, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range cut.Nodes {
		names = append(names, n.Name+":"+n.Op)
	}
	if !slices.Equal(names, []string{"conv:Placeholder", "size:Const", "up:ResizeBilinear", "axis:Const", "cat:ConcatV2"}) {
		t.Errorf("cut at conv: %v", names)
	}
	if h, w, err := cut.InputSize(); h != 4 || w != 4 || err != nil || cut.Find("conv").Attrs["dtype"].Type != Float {
		t.Errorf("input %dx%d, %v: %+v", w, h, err, cut.Find("conv").Attrs)
	}
	for name, o := range map[string]ConvertOptions{
		"unknown input": {Outputs: []string{"cat"}, Inputs: map[string][]int64{"nope": {1}}},
		"empty shape":   {Outputs: []string{"cat"}, Inputs: map[string][]int64{"conv": {}}},
		"unknown size":  {Outputs: []string{"cat"}, Inputs: map[string][]int64{"conv": {1, -1, 4, 2}}},
	} {
		if _, err := ConvertTFJS(older, w, o); err == nil {
			t.Errorf("%s: converted", name)
		}
	}
	for name, edit := range map[string][2]string{
		"no format, no nodes":  {`"modelTopology":{`, `"modelTopology":{"node":[]},"x":{`},
		"byte out of range":    {`[83,65,77,69]`, `[83,65,77,300]`},
		"unknown type number":  {`"T":{"type":1}`, `"T":{"type":99}`},
		"non-empty shape list": {`"shape":[]`, `"shape":[{}]`},
	} {
		bad := strings.Replace(string(older), edit[0], edit[1], 1)
		if bad == string(older) {
			t.Fatalf("%s: the edit did not apply", name)
		}
		if _, err := ConvertTFJS([]byte(bad), w, ConvertOptions{Outputs: []string{"cat"}}); err == nil {
			t.Errorf("%s: converted", name)
		}
	}
}

func TestConvertTFJSRejects(t *testing.T) {
	j, w := tinyModel(t)
	for name, c := range map[string]struct {
		j, w []byte
		o    ConvertOptions
	}{
		"short weights":    {j, w[:len(w)-1], ConvertOptions{Outputs: []string{"cat"}}},
		"extra weights":    {j, append(append([]byte{}, w...), 0), ConvertOptions{Outputs: []string{"cat"}}},
		"no outputs":       {j, w, ConvertOptions{}},
		"unknown output":   {j, w, ConvertOptions{Outputs: []string{"nope"}}},
		"bad channel":      {j, w, ConvertOptions{Outputs: []string{"cat"}, KeepChannels: map[string][]int{"conv": {2}}}},
		"not a conv":       {j, w, ConvertOptions{Outputs: []string{"cat"}, KeepChannels: map[string][]int{"up": {0}}}},
		"layers format":    {bytes.Replace(j, []byte(`"graph-model"`), []byte(`"layers-model"`), 1), w, ConvertOptions{Outputs: []string{"cat"}}},
		"uint8 quantised":  {bytes.Replace(j, []byte(`"dtype":"float16"`), []byte(`"dtype":"uint8"`), 1), w, ConvertOptions{Outputs: []string{"cat"}}},
		"fused leaky relu": {bytes.Replace(j, []byte(base64.StdEncoding.EncodeToString([]byte("Relu6"))), []byte(base64.StdEncoding.EncodeToString([]byte("LeakyRelu"))), 1), w, ConvertOptions{Outputs: []string{"cat"}}},
		"cycle":            {bytes.Replace(j, []byte(`"input":["x","w","b"]`), []byte(`"input":["cat","w","b"]`), 1), w, ConvertOptions{Outputs: []string{"cat"}}},
	} {
		if string(c.j) == string(j) && name != "short weights" && name != "extra weights" && name != "no outputs" && name != "unknown output" && name != "bad channel" && name != "not a conv" {
			t.Fatalf("%s: the edit did not apply", name)
		}
		if _, err := ConvertTFJS(c.j, c.w, c.o); err == nil {
			t.Errorf("%s: converted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	j, w := (func() ([]byte, []byte) {
		t := &testing.T{}
		return tinyModel(t)
	})()
	g, err := ConvertTFJS(j, w, ConvertOptions{Outputs: []string{"cat"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(g.Marshal())
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Unmarshal(b)
		if err != nil {
			return
		}
		// What was read writes back to something that reads the same.
		b2 := g.Marshal()
		g2, err := Unmarshal(b2)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if !bytes.Equal(g2.Marshal(), b2) {
			t.Fatal("marshal is not stable")
		}
	})
}

func FuzzConvertTFJS(f *testing.F) {
	t := &testing.T{}
	j, w := tinyModel(t)
	f.Add(j, w)
	f.Fuzz(func(t *testing.T, j, w []byte) {
		g, err := ConvertTFJS(j, w, ConvertOptions{Outputs: []string{"cat"}})
		if err != nil {
			return
		}
		if _, err := Unmarshal(g.Marshal()); err != nil {
			t.Fatalf("a converted graph does not read back: %v", err)
		}
	})
}
