package detect

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX protobuf field numbers used by the graph rewrite (onnx.proto3).
const (
	modelGraph = 7 // ModelProto.graph

	graphInitializer = 5  // GraphProto.initializer
	graphInput       = 11 // GraphProto.input
	graphOutput      = 12 // GraphProto.output
	graphValueInfo   = 13 // GraphProto.value_info

	tensorDims     = 1 // TensorProto.dims
	tensorDataType = 2 // TensorProto.data_type
	tensorName     = 8 // TensorProto.name
	tensorRaw      = 9 // TensorProto.raw_data

	valueName = 1 // ValueInfoProto.name
	valueType = 2 // ValueInfoProto.type

	typeTensor  = 1 // TypeProto.tensor_type
	tensorShape = 2 // TypeProto.Tensor.shape
	shapeDim    = 1 // TensorShapeProto.dim
	dimValue    = 1 // TensorShapeProto.Dimension.dim_value
	dimParam    = 2 // TensorShapeProto.Dimension.dim_param

	onnxInt64 = 7 // TensorProto.DataType INT64
)

// BlazeFace back-256's constants that tie the graph to a 256x256 input: the
// shapes of the zero tensors concatenated as channel padding after the
// stride-8 and stride-16 max-pools, and the reshape targets of the four
// outputs (scores and regressors of the stride-16 and stride-32 grids).
const (
	blazePad8   = "shape_1x24x32x32"
	blazePad16  = "shape_1x48x16x16"
	blazeScore1 = "const_fold_opt__354"
	blazeScore2 = "const_fold_opt__358"
	blazeBoxes1 = "const_fold_opt__355"
	blazeBoxes2 = "const_fold_opt__356"
)

// ReshapeBlazeFace rewrites the BlazeFace back-256 ONNX graph to take an
// input of h x w pixels (multiples of 32) and to run fully convolutionally
// over it: the input is declared [1,h,w,3], the two padding shapes follow
// the feature maps ([1,24,h/8,w/8], [1,48,h/16,w/16]), the output reshapes
// become size-free ([1,-1,1], [1,-1,16]), and the intermediate shape
// annotations (value_info) and output shapes, which name 256x256 sizes, are
// dropped. Every other byte (weights, nodes) is kept as it is, so the
// transform is deterministic and works on the hash-verified model bytes.
func ReshapeBlazeFace(onnx []byte, h, w int) ([]byte, error) {
	if h < 32 || w < 32 || h%32 != 0 || w%32 != 0 {
		return nil, fmt.Errorf("blazeface graph: input %dx%d: width and height must be positive multiples of 32", w, h)
	}
	consts := map[string][]int64{
		blazePad8:   {1, 24, int64(h / 8), int64(w / 8)},
		blazePad16:  {1, 48, int64(h / 16), int64(w / 16)},
		blazeScore1: {1, -1, 1},
		blazeScore2: {1, -1, 1},
		blazeBoxes1: {1, -1, 16},
		blazeBoxes2: {1, -1, 16},
	}
	found := map[string]bool{}
	inputs := 0
	var graphErr error
	out, err := rewriteFields(onnx, func(num protowire.Number, typ protowire.Type, v []byte) ([]byte, bool, error) {
		if num != modelGraph || typ != protowire.BytesType {
			return nil, false, nil
		}
		g, err := rewriteFields(v, func(num protowire.Number, typ protowire.Type, v []byte) ([]byte, bool, error) {
			if typ != protowire.BytesType {
				return nil, false, nil
			}
			switch num {
			case graphValueInfo:
				return nil, true, nil // drop
			case graphOutput:
				b, err := freeOutputAnchors(v)
				return b, true, err
			case graphInput:
				inputs++
				b, err := setValueDims(v, []int64{1, int64(h), int64(w), 3})
				return b, true, err
			case graphInitializer:
				name, err := tensorNameOf(v)
				if err != nil {
					return nil, false, err
				}
				vals, ok := consts[name]
				if !ok {
					return nil, false, nil
				}
				found[name] = true
				return int64Tensor(name, vals), true, nil
			}
			return nil, false, nil
		})
		if err != nil {
			graphErr = err
		}
		return g, true, err
	})
	if err != nil {
		return nil, fmt.Errorf("blazeface graph: %w", err)
	}
	if graphErr != nil {
		return nil, fmt.Errorf("blazeface graph: %w", graphErr)
	}
	if inputs != 1 {
		return nil, fmt.Errorf("blazeface graph: %d inputs, want 1: not the BlazeFace back-256 model", inputs)
	}
	for name := range consts {
		if !found[name] {
			return nil, fmt.Errorf("blazeface graph: constant %s not found: not the BlazeFace back-256 model", name)
		}
	}
	return out, nil
}

// rewriteFields copies a protobuf message field by field. For each field
// edit may return a replacement value (bytes fields only) with true, or
// nil with true to drop the field, or false to keep it unchanged.
func rewriteFields(msg []byte, edit func(protowire.Number, protowire.Type, []byte) ([]byte, bool, error)) ([]byte, error) {
	out := make([]byte, 0, len(msg))
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, fmt.Errorf("malformed protobuf tag: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, msg[n:])
		if m < 0 {
			return nil, fmt.Errorf("malformed protobuf field %d: %w", num, protowire.ParseError(m))
		}
		field := msg[:n+m]
		var val []byte
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(msg[n:])
		}
		msg = msg[n+m:]
		repl, changed, err := edit(num, typ, val)
		if err != nil {
			return nil, err
		}
		switch {
		case !changed:
			out = append(out, field...)
		case repl != nil:
			out = protowire.AppendTag(out, num, protowire.BytesType)
			out = protowire.AppendBytes(out, repl)
		}
	}
	return out, nil
}

// setValueDims rewrites a ValueInfoProto's tensor shape to dims.
func setValueDims(v []byte, dims []int64) ([]byte, error) {
	return editShape(v, func([]byte) ([]byte, error) {
		var shape []byte
		for _, d := range dims {
			var dim []byte
			dim = protowire.AppendTag(dim, dimValue, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d))
			shape = protowire.AppendTag(shape, shapeDim, protowire.BytesType)
			shape = protowire.AppendBytes(shape, dim)
		}
		return shape, nil
	})
}

// freeOutputAnchors turns an output's second dimension (the anchor count,
// which follows the input size) into a named, free dimension.
func freeOutputAnchors(v []byte) ([]byte, error) {
	return editShape(v, func(shape []byte) ([]byte, error) {
		i := 0
		return rewriteFields(shape, func(num protowire.Number, typ protowire.Type, _ []byte) ([]byte, bool, error) {
			if num != shapeDim || typ != protowire.BytesType {
				return nil, false, nil
			}
			i++
			if i != 2 {
				return nil, false, nil
			}
			var dim []byte
			dim = protowire.AppendTag(dim, dimParam, protowire.BytesType)
			dim = protowire.AppendString(dim, "anchors")
			return dim, true, nil
		})
	})
}

// editShape replaces a ValueInfoProto's tensor shape by what edit makes of it.
func editShape(v []byte, edit func(shape []byte) ([]byte, error)) ([]byte, error) {
	return rewriteFields(v, func(num protowire.Number, typ protowire.Type, t []byte) ([]byte, bool, error) {
		if num != valueType || typ != protowire.BytesType {
			return nil, false, nil
		}
		b, err := rewriteFields(t, func(num protowire.Number, typ protowire.Type, tt []byte) ([]byte, bool, error) {
			if num != typeTensor || typ != protowire.BytesType {
				return nil, false, nil
			}
			b, err := rewriteFields(tt, func(num protowire.Number, typ protowire.Type, shape []byte) ([]byte, bool, error) {
				if num != tensorShape || typ != protowire.BytesType {
					return nil, false, nil
				}
				b, err := edit(shape)
				return b, true, err
			})
			return b, true, err
		})
		return b, true, err
	})
}

// tensorNameOf returns a TensorProto's name.
func tensorNameOf(t []byte) (string, error) {
	name := ""
	_, err := rewriteFields(t, func(num protowire.Number, typ protowire.Type, v []byte) ([]byte, bool, error) {
		if num == tensorName && typ == protowire.BytesType {
			name = string(v)
		}
		return nil, false, nil
	})
	return name, err
}

// int64Tensor encodes a one-dimensional INT64 TensorProto with raw data.
func int64Tensor(name string, vals []int64) []byte {
	var b []byte
	b = protowire.AppendTag(b, tensorDims, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(len(vals)))
	b = protowire.AppendTag(b, tensorDataType, protowire.VarintType)
	b = protowire.AppendVarint(b, onnxInt64)
	b = protowire.AppendTag(b, tensorName, protowire.BytesType)
	b = protowire.AppendString(b, name)
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	b = protowire.AppendTag(b, tensorRaw, protowire.BytesType)
	b = protowire.AppendBytes(b, raw)
	return b
}
