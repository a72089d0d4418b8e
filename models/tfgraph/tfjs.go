package tfgraph

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ConvertOptions says what to keep of a TFJS graph model and how to adapt it.
type ConvertOptions struct {
	// Outputs are the nodes to keep, with everything they depend on; the
	// rest of the graph (e.g. decoding ops OpenCV cannot run) is dropped.
	Outputs []string
	// KeepChannels narrows a fused convolution (named as in the TFJS graph)
	// to the listed output channels: its filter's last dimension and its
	// bias. Used to slice a detector's class head to the classes wanted.
	KeepChannels map[string][]int
	// Inputs replaces each named node by a float32 Placeholder of the
	// given shape under the same name, cutting off what it was computed
	// from: e.g. a preprocessing loop OpenCV cannot run, whose output the
	// caller then feeds itself.
	Inputs map[string][]int64
}

// tfjsModel is a TFJS graph model's model.json.
type tfjsModel struct {
	Format        string `json:"format"`
	ModelTopology struct {
		Node []tfjsNode `json:"node"`
	} `json:"modelTopology"`
	WeightsManifest []struct {
		Paths   []string     `json:"paths"`
		Weights []tfjsWeight `json:"weights"`
	} `json:"weightsManifest"`
}

type tfjsNode struct {
	Name  string                     `json:"name"`
	Op    string                     `json:"op"`
	Input []string                   `json:"input"`
	Attr  map[string]json.RawMessage `json:"attr"`
}

type tfjsWeight struct {
	Name         string  `json:"name"`
	Shape        []int64 `json:"shape"`
	DType        string  `json:"dtype"`
	Quantization *struct {
		DType string `json:"dtype"`
	} `json:"quantization"`
}

// maxModelElements bounds a TFJS model's weights (64 M values), so a
// hostile manifest cannot make the converter allocate without limit.
const maxModelElements = 64 << 20

// ConvertTFJS turns a TFJS graph model (model.json and its weight files
// concatenated in manifest order; format "graph-model", or no format at all
// as older converters wrote it) into a frozen GraphDef OpenCV can import:
//
//   - weights are decoded (float32, float16-quantised float32, int32) and
//     written as constants: floats as float32 tensor_content, integers as
//     int_val;
//   - TFJS's fused convolutions (_FusedConv2D, FusedDepthwiseConv2dNative
//     with BiasAdd and an optional Relu, Relu6 or Elu) are split back into
//     the convolution, a BiasAdd and the activation, named so that the last
//     of them keeps the fused node's name;
//   - the nodes named in Inputs become Placeholders;
//   - only Outputs and what they depend on are kept, in dependency order.
//
// The result depends only on the inputs, so it can be pinned by hash.
func ConvertTFJS(modelJSON, weights []byte, o ConvertOptions) (*Graph, error) {
	var m tfjsModel
	if err := json.Unmarshal(modelJSON, &m); err != nil {
		return nil, fmt.Errorf("tfjs: model.json: %w", err)
	}
	if m.Format != "graph-model" && (m.Format != "" || len(m.ModelTopology.Node) == 0) {
		return nil, fmt.Errorf("tfjs: format %q, want graph-model", m.Format)
	}
	if len(o.Outputs) == 0 {
		return nil, errors.New("tfjs: no outputs named")
	}
	consts, err := decodeWeights(m, weights)
	if err != nil {
		return nil, err
	}
	byName := map[string]*tfjsNode{}
	for i := range m.ModelTopology.Node {
		n := &m.ModelTopology.Node[i]
		if n.Name == "" || n.Op == "" {
			return nil, fmt.Errorf("tfjs: node %d has no name or op", i)
		}
		if byName[n.Name] != nil {
			return nil, fmt.Errorf("tfjs: node %q defined twice", n.Name)
		}
		byName[n.Name] = n
	}
	for name, shape := range o.Inputs {
		n := byName[name]
		if n == nil {
			return nil, fmt.Errorf("tfjs: input %q: no such node", name)
		}
		if len(shape) == 0 || Elements(shape) <= 0 {
			return nil, fmt.Errorf("tfjs: input %q: shape %v", name, shape)
		}
		dims := make([]map[string]string, len(shape))
		for i, d := range shape {
			dims[i] = map[string]string{"size": strconv.FormatInt(d, 10)}
		}
		sh, err := json.Marshal(map[string]any{"shape": map[string]any{"dim": dims}})
		if err != nil {
			return nil, err
		}
		*n = tfjsNode{Name: name, Op: "Placeholder", Attr: map[string]json.RawMessage{
			"dtype": json.RawMessage(`{"type":"DT_FLOAT"}`), "shape": sh}}
	}
	order, err := dependencies(byName, o.Outputs)
	if err != nil {
		return nil, err
	}
	for name, keep := range o.KeepChannels {
		if byName[name] == nil {
			return nil, fmt.Errorf("tfjs: keep channels of %q: no such node", name)
		}
		if err := keepChannels(byName[name], consts, keep); err != nil {
			return nil, fmt.Errorf("tfjs: node %q: %w", name, err)
		}
	}
	g := &Graph{}
	for _, name := range order {
		n := byName[name]
		attrs, err := convertAttrs(n.Attr)
		if err != nil {
			return nil, fmt.Errorf("tfjs: node %q: %w", n.Name, err)
		}
		if n.Op == "Const" {
			t := consts[n.Name]
			if t == nil {
				return nil, fmt.Errorf("tfjs: constant %q has no weights", n.Name)
			}
			attrs["value"] = Attr{Kind: KindTensor, Tensor: t}
			attrs["dtype"] = Attr{Kind: KindType, Type: t.DType}
		}
		nodes, err := unfuse(n, attrs)
		if err != nil {
			return nil, fmt.Errorf("tfjs: node %q: %w", n.Name, err)
		}
		g.Nodes = append(g.Nodes, nodes...)
	}
	return g, nil
}

// decodeWeights reads every weight of the manifest from the concatenated
// weight files, in order.
func decodeWeights(m tfjsModel, data []byte) (map[string]*Tensor, error) {
	out := map[string]*Tensor{}
	off, total := 0, int64(0)
	for _, group := range m.WeightsManifest {
		for _, w := range group.Weights {
			n := Elements(w.Shape)
			if n < 0 || n > maxModelElements || total+n > maxModelElements {
				return nil, fmt.Errorf("tfjs: weight %q: shape %v out of range", w.Name, w.Shape)
			}
			total += n
			size, dt := 4, Float
			switch {
			case w.DType == "float32" && w.Quantization == nil:
			case w.DType == "float32" && w.Quantization.DType == "float16":
				size = 2
			case w.DType == "int32" && w.Quantization == nil:
				dt = Int32
			default:
				q := ""
				if w.Quantization != nil {
					q = " quantised as " + w.Quantization.DType
				}
				return nil, fmt.Errorf("tfjs: weight %q: dtype %s%s not supported (float32, float16-quantised float32, int32)", w.Name, w.DType, q)
			}
			end := off + int(n)*size
			if end > len(data) {
				return nil, fmt.Errorf("tfjs: weights end at byte %d, weight %q needs up to %d", len(data), w.Name, end)
			}
			raw := data[off:end]
			off = end
			t := &Tensor{DType: dt, Shape: append([]int64{}, w.Shape...)}
			switch {
			case dt == Int32:
				t.IntVal = make([]int32, n)
				for i := range t.IntVal {
					t.IntVal[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
				}
			case size == 2:
				t.Content = make([]byte, 4*n)
				for i := int64(0); i < n; i++ {
					f := HalfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
					binary.LittleEndian.PutUint32(t.Content[4*i:], math.Float32bits(f))
				}
			default:
				t.Content = bytes.Clone(raw)
			}
			if out[w.Name] != nil {
				return nil, fmt.Errorf("tfjs: weight %q listed twice", w.Name)
			}
			out[w.Name] = t
		}
	}
	if off != len(data) {
		return nil, fmt.Errorf("tfjs: weights are %d bytes, the manifest describes %d", len(data), off)
	}
	return out, nil
}

// HalfToFloat converts an IEEE 754 binary16 value to float32.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0: // zero
		return math.Float32frombits(sign)
	}
	// Subnormal: the value is frac * 2^-24.
	f := float32(frac) * float32(1.0/(1<<24))
	if sign != 0 {
		f = -f
	}
	return f
}

// inputName strips an input reference's output index (":1") and control
// marker ("^").
func inputName(in string) string {
	in = strings.TrimPrefix(in, "^")
	if i := strings.LastIndexByte(in, ':'); i >= 0 {
		if _, err := strconv.Atoi(in[i+1:]); err == nil {
			return in[:i]
		}
	}
	return in
}

// dependencies lists the outputs and every node they depend on, each after
// its inputs, in the model's own order where the dependencies allow.
func dependencies(byName map[string]*tfjsNode, outputs []string) ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []string
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		n := byName[name]
		if n == nil {
			return fmt.Errorf("tfjs: node %q is referenced but not defined", name)
		}
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("tfjs: node %q depends on itself", name)
		}
		if depth > len(byName) {
			return errors.New("tfjs: graph too deep")
		}
		state[name] = visiting
		for _, in := range n.Input {
			if err := visit(inputName(in), depth+1); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, out := range outputs {
		if err := visit(out, 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// convertAttrs turns TFJS's JSON AttrValues (protobuf's JSON mapping) into
// Attrs. Attributes only TensorFlow's optimisers read are dropped.
func convertAttrs(in map[string]json.RawMessage) (map[string]Attr, error) {
	out := map[string]Attr{}
	for k, raw := range in {
		if strings.HasPrefix(k, "_") {
			continue // e.g. _grappler_ArithmeticOptimizer_MinimizeBroadcasts
		}
		var v struct {
			List   *jsonList       `json:"list"`
			S      *jsonBytes      `json:"s"`
			I      *string         `json:"i"`
			F      *float64        `json:"f"`
			B      *bool           `json:"b"`
			Type   *jsonType       `json:"type"`
			Shape  *jsonShape      `json:"shape"`
			Tensor json.RawMessage `json:"tensor"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("attr %s: %w", k, err)
		}
		var a Attr
		var err error
		switch {
		case v.List != nil:
			a.Kind = KindList
			a.List, err = v.List.convert()
		case v.S != nil:
			a.Kind, a.S = KindS, []byte(*v.S)
		case v.I != nil:
			a.Kind = KindI
			a.I, err = strconv.ParseInt(*v.I, 10, 64)
		case v.F != nil:
			a.Kind, a.F = KindF, float32(*v.F)
		case v.B != nil:
			a.Kind, a.B = KindB, *v.B
		case v.Type != nil:
			a.Kind, a.Type = KindType, DataType(*v.Type)
		case v.Shape != nil:
			a.Kind = KindShape
			a.Shape, err = v.Shape.convert()
		case v.Tensor != nil:
			// A constant's value: filled from the weights by the caller.
			continue
		default:
			return nil, fmt.Errorf("attr %s: no value", k)
		}
		if err != nil {
			return nil, fmt.Errorf("attr %s: %w", k, err)
		}
		out[k] = a
	}
	return out, nil
}

func dataType(s string) (DataType, error) {
	t, ok := dataTypeNames[s]
	if !ok {
		return 0, fmt.Errorf("data type %q not supported", s)
	}
	return t, nil
}

// jsonBytes is a bytes field: base64 text in protobuf's JSON mapping, or an
// array of byte values as older TFJS converters wrote it.
type jsonBytes []byte

func (b *jsonBytes) UnmarshalJSON(j []byte) error {
	var s string
	if err := json.Unmarshal(j, &s); err == nil {
		v, err := base64.StdEncoding.DecodeString(s)
		*b = v
		return err
	}
	var ints []int
	if err := json.Unmarshal(j, &ints); err != nil {
		return fmt.Errorf("bytes: want base64 text or an array of bytes: %w", err)
	}
	v := make([]byte, len(ints))
	for i, x := range ints {
		if x < 0 || x > 255 {
			return fmt.Errorf("bytes: %d is not a byte", x)
		}
		v[i] = byte(x)
	}
	*b = v
	return nil
}

// jsonType is a DataType: its name ("DT_FLOAT") or, as older TFJS
// converters wrote it, its number.
type jsonType DataType

func (t *jsonType) UnmarshalJSON(j []byte) error {
	var s string
	if err := json.Unmarshal(j, &s); err == nil {
		v, err := dataType(s)
		*t = jsonType(v)
		return err
	}
	var n int32
	if err := json.Unmarshal(j, &n); err != nil {
		return fmt.Errorf("data type: want a name or a number: %w", err)
	}
	for _, v := range dataTypeNames {
		if v == DataType(n) {
			*t = jsonType(n)
			return nil
		}
	}
	return fmt.Errorf("data type %d not supported", n)
}

type jsonList struct {
	S    []jsonBytes `json:"s"`
	I    []string    `json:"i"`
	F    []float64   `json:"f"`
	B    []bool      `json:"b"`
	Type []jsonType  `json:"type"`
	// Written empty by older TFJS converters; lists of them are not
	// supported.
	Shape  []json.RawMessage `json:"shape"`
	Tensor []json.RawMessage `json:"tensor"`
	Func   []json.RawMessage `json:"func"`
}

func (l *jsonList) convert() (List, error) {
	var out List
	if len(l.Shape) > 0 || len(l.Tensor) > 0 || len(l.Func) > 0 {
		return out, errors.New("lists of shapes, tensors or functions not supported")
	}
	for _, s := range l.S {
		out.S = append(out.S, []byte(s))
	}
	for _, s := range l.I {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return out, err
		}
		out.I = append(out.I, i)
	}
	for _, f := range l.F {
		out.F = append(out.F, float32(f))
	}
	out.B = append(out.B, l.B...)
	for _, t := range l.Type {
		out.Type = append(out.Type, DataType(t))
	}
	return out, nil
}

type jsonShape struct {
	Dim []struct {
		Size string `json:"size"`
	} `json:"dim"`
	UnknownRank bool `json:"unknownRank"`
}

func (s *jsonShape) convert() ([]int64, error) {
	if s.UnknownRank {
		return nil, errors.New("shape of unknown rank")
	}
	dims := []int64{}
	for _, d := range s.Dim {
		v, err := strconv.ParseInt(d.Size, 10, 64)
		if err != nil {
			return nil, err
		}
		dims = append(dims, v)
	}
	return dims, nil
}

// fusedBase maps TFJS's fused convolution ops to TensorFlow's plain ones.
var fusedBase = map[string]string{
	"_FusedConv2D":               "Conv2D",
	"FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
}

// unfuse returns the node as TensorFlow nodes: itself, or for a fused
// convolution the convolution, its BiasAdd and its activation.
func unfuse(n *tfjsNode, attrs map[string]Attr) ([]*Node, error) {
	base, fused := fusedBase[n.Op]
	if !fused {
		return []*Node{{Name: n.Name, Op: n.Op, Inputs: append([]string{}, n.Input...), Attrs: attrs}}, nil
	}
	var ops []string
	for _, s := range attrs["fused_ops"].List.S {
		ops = append(ops, string(s))
	}
	if len(ops) == 0 || ops[0] != "BiasAdd" || len(ops) > 2 {
		return nil, fmt.Errorf("%s fusing %v not supported (BiasAdd, then optionally Relu, Relu6 or Elu)", n.Op, ops)
	}
	if len(n.Input) != 3 {
		return nil, fmt.Errorf("%s with %d inputs, want 3 (input, filter, bias)", n.Op, len(n.Input))
	}
	if a, ok := attrs["num_args"]; ok && a.I != 1 {
		return nil, fmt.Errorf("%s with num_args %d, want 1", n.Op, a.I)
	}
	t, ok := attrs["T"]
	if !ok {
		t = Attr{Kind: KindType, Type: Float}
	}
	convAttrs := map[string]Attr{"T": t}
	for _, k := range []string{"strides", "padding", "data_format", "dilations", "use_cudnn_on_gpu"} {
		if a, ok := attrs[k]; ok {
			convAttrs[k] = a
		}
	}
	if p := attrs["padding"]; string(p.S) == "EXPLICIT" {
		return nil, fmt.Errorf("%s with explicit padding not supported", n.Op)
	}
	names := []string{n.Name + "/conv", n.Name + "/bias_add", n.Name}
	if len(ops) == 1 {
		names = []string{n.Name + "/conv", n.Name}
	}
	out := []*Node{
		{Name: names[0], Op: base, Inputs: []string{n.Input[0], n.Input[1]}, Attrs: convAttrs},
		{Name: names[1], Op: "BiasAdd", Inputs: []string{names[0], n.Input[2]}, Attrs: map[string]Attr{"T": t, "data_format": attrs["data_format"]}},
	}
	if len(ops) == 2 {
		switch ops[1] {
		case "Relu", "Relu6", "Elu":
		default:
			return nil, fmt.Errorf("%s fusing activation %s not supported (Relu, Relu6, Elu)", n.Op, ops[1])
		}
		out = append(out, &Node{Name: names[2], Op: ops[1], Inputs: []string{names[1]}, Attrs: map[string]Attr{"T": t}})
	}
	if _, ok := attrs["data_format"]; !ok {
		delete(out[1].Attrs, "data_format")
	}
	return out, nil
}

// keepChannels narrows a fused convolution's filter (last dimension) and
// bias to the given output channels, in place in consts.
func keepChannels(n *tfjsNode, consts map[string]*Tensor, keep []int) error {
	if _, ok := fusedBase[n.Op]; !ok || len(n.Input) != 3 {
		return fmt.Errorf("keep channels: %s is not a fused convolution with a bias", n.Op)
	}
	filter, bias := consts[inputName(n.Input[1])], consts[inputName(n.Input[2])]
	if filter == nil || bias == nil || filter.DType != Float || bias.DType != Float || len(filter.Shape) != 4 || len(bias.Shape) != 1 {
		return errors.New("keep channels: filter or bias is not a float constant of the usual shape")
	}
	cout := filter.Shape[3]
	if filter.Shape[2] == 0 || bias.Shape[0] != cout || len(keep) == 0 {
		return errors.New("keep channels: filter and bias disagree on the channels")
	}
	fv, err := filter.Floats()
	if err != nil {
		return err
	}
	bv, err := bias.Floats()
	if err != nil {
		return err
	}
	for _, c := range keep {
		if c < 0 || int64(c) >= cout {
			return fmt.Errorf("keep channels: channel %d of %d", c, cout)
		}
	}
	rows := int64(len(fv)) / cout
	nf := make([]float32, 0, rows*int64(len(keep)))
	for r := int64(0); r < rows; r++ {
		for _, c := range keep {
			nf = append(nf, fv[r*cout+int64(c)])
		}
	}
	nb := make([]float32, 0, len(keep))
	for _, c := range keep {
		nb = append(nb, bv[c])
	}
	shape := append([]int64{}, filter.Shape...)
	shape[3] = int64(len(keep))
	*filter = *FloatTensor(shape, nf)
	*bias = *FloatTensor([]int64{int64(len(keep))}, nb)
	return nil
}
