// Package tfgraph reads and writes the subset of TensorFlow's GraphDef that
// OpenCV's DNN module imports (cv::dnn::readNetFromTensorflow), and converts
// TensorFlow.js graph models into it.
//
// It exists so that a person detector shipped only as a TFJS graph model
// (JSON topology plus a binary weights file, fp16-quantised) can be turned,
// deterministically and in Go, into a frozen GraphDef that OpenCV 4.6 loads.
// Marshal writes fields in field-number order and attributes sorted by name,
// so the same graph always gives the same bytes and the converted file can
// be pinned by its SHA-256.
//
// Only what frozen inference graphs use is modelled: nodes with their inputs
// and attributes, and constant tensors. Unmarshal rejects anything else
// rather than dropping it silently.
package tfgraph

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is TensorFlow's types.proto DataType.
type DataType int32

// The data types frozen inference graphs use.
const (
	Float DataType = 1  // DT_FLOAT
	Int32 DataType = 3  // DT_INT32
	Bool  DataType = 10 // DT_BOOL
	Half  DataType = 19 // DT_HALF
)

var dataTypeNames = map[string]DataType{"DT_FLOAT": Float, "DT_INT32": Int32, "DT_BOOL": Bool, "DT_HALF": Half}

func (t DataType) String() string {
	for n, v := range dataTypeNames {
		if v == t {
			return n
		}
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// Graph is a frozen graph: its nodes in the order they are written.
type Graph struct {
	Nodes []*Node
}

// Node is a NodeDef.
type Node struct {
	Name   string
	Op     string
	Inputs []string
	Attrs  map[string]Attr
}

// Attr is an AttrValue. Exactly one of its fields is meaningful, as Kind says.
type Attr struct {
	Kind   AttrKind
	S      []byte
	I      int64
	F      float32
	B      bool
	Type   DataType
	Shape  []int64 // dimension sizes; -1 for an unknown one
	Tensor *Tensor
	List   List
}

// AttrKind says which field of an Attr is set.
type AttrKind uint8

// Attribute kinds, by AttrValue's oneof.
const (
	KindList AttrKind = iota + 1
	KindS
	KindI
	KindF
	KindB
	KindType
	KindShape
	KindTensor
)

// List is an AttrValue.ListValue.
type List struct {
	S    [][]byte
	I    []int64
	F    []float32
	B    []bool
	Type []DataType
}

// Tensor is a constant TensorProto. Float tensors keep their values as
// little-endian float32 bytes (tensor_content); int32 tensors as IntVal
// (int_val), which is the only place OpenCV 4.6 reads integer constants
// such as a concatenation's axis from.
type Tensor struct {
	DType   DataType
	Shape   []int64
	Content []byte  // tensor_content
	IntVal  []int32 // int_val
}

// Floats returns a float tensor's values.
func (t *Tensor) Floats() ([]float32, error) {
	if t.DType != Float {
		return nil, fmt.Errorf("tensor is %v, not DT_FLOAT", t.DType)
	}
	if len(t.Content)%4 != 0 {
		return nil, fmt.Errorf("float tensor content of %d bytes", len(t.Content))
	}
	out := make([]float32, len(t.Content)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Content[4*i:]))
	}
	return out, nil
}

// FloatTensor makes a DT_FLOAT tensor of the given shape.
func FloatTensor(shape []int64, v []float32) *Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &Tensor{DType: Float, Shape: slices.Clone(shape), Content: b}
}

// Elements is the number of values the shape holds (1 for a scalar).
func Elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// Find returns the node with the given name, or nil.
func (g *Graph) Find(name string) *Node {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// GraphDef, NodeDef, AttrValue, ListValue, TensorShapeProto and TensorProto
// field numbers (tensorflow/core/framework/*.proto).
const (
	fGraphNode = 1

	fNodeName  = 1
	fNodeOp    = 2
	fNodeInput = 3
	fNodeAttr  = 5

	fMapKey   = 1
	fMapValue = 2

	fAttrList   = 1
	fAttrS      = 2
	fAttrI      = 3
	fAttrF      = 4
	fAttrB      = 5
	fAttrType   = 6
	fAttrShape  = 7
	fAttrTensor = 8

	fListS    = 2
	fListI    = 3
	fListF    = 4
	fListB    = 5
	fListType = 6

	fShapeDim     = 2
	fShapeUnknown = 3
	fDimSize      = 1

	fTensorDType   = 1
	fTensorShape   = 2
	fTensorContent = 4
	fTensorIntVal  = 7
)

// Marshal encodes the graph as a GraphDef. The bytes depend only on the
// graph: attributes are written sorted by name.
func (g *Graph) Marshal() []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = protowire.AppendTag(b, fGraphNode, protowire.BytesType)
		b = protowire.AppendBytes(b, n.marshal())
	}
	return b
}

func (n *Node) marshal() []byte {
	var b []byte
	b = appendString(b, fNodeName, n.Name)
	b = appendString(b, fNodeOp, n.Op)
	for _, in := range n.Inputs {
		b = appendString(b, fNodeInput, in)
	}
	keys := make([]string, 0, len(n.Attrs))
	for k := range n.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := n.Attrs[k]
		var e []byte
		e = appendString(e, fMapKey, k)
		e = protowire.AppendTag(e, fMapValue, protowire.BytesType)
		e = protowire.AppendBytes(e, a.marshal())
		b = protowire.AppendTag(b, fNodeAttr, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func (a Attr) marshal() []byte {
	var b []byte
	switch a.Kind {
	case KindList:
		b = protowire.AppendTag(b, fAttrList, protowire.BytesType)
		b = protowire.AppendBytes(b, a.List.marshal())
	case KindS:
		b = protowire.AppendTag(b, fAttrS, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case KindI:
		b = protowire.AppendTag(b, fAttrI, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case KindF:
		b = protowire.AppendTag(b, fAttrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case KindB:
		b = protowire.AppendTag(b, fAttrB, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(a.B))
	case KindType:
		b = protowire.AppendTag(b, fAttrType, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.Type))
	case KindShape:
		b = protowire.AppendTag(b, fAttrShape, protowire.BytesType)
		b = protowire.AppendBytes(b, marshalShape(a.Shape))
	case KindTensor:
		b = protowire.AppendTag(b, fAttrTensor, protowire.BytesType)
		b = protowire.AppendBytes(b, a.Tensor.marshal())
	}
	return b
}

func (l List) marshal() []byte {
	var b []byte
	for _, s := range l.S {
		b = protowire.AppendTag(b, fListS, protowire.BytesType)
		b = protowire.AppendBytes(b, s)
	}
	if len(l.I) > 0 {
		var p []byte
		for _, v := range l.I {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = protowire.AppendTag(b, fListI, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	if len(l.F) > 0 {
		var p []byte
		for _, v := range l.F {
			p = protowire.AppendFixed32(p, math.Float32bits(v))
		}
		b = protowire.AppendTag(b, fListF, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	if len(l.B) > 0 {
		var p []byte
		for _, v := range l.B {
			p = protowire.AppendVarint(p, protowire.EncodeBool(v))
		}
		b = protowire.AppendTag(b, fListB, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	if len(l.Type) > 0 {
		var p []byte
		for _, v := range l.Type {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = protowire.AppendTag(b, fListType, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	return b
}

func marshalShape(dims []int64) []byte {
	var b []byte
	for _, d := range dims {
		var e []byte
		e = protowire.AppendTag(e, fDimSize, protowire.VarintType)
		e = protowire.AppendVarint(e, uint64(d))
		b = protowire.AppendTag(b, fShapeDim, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

func (t *Tensor) marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, fTensorDType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.DType))
	b = protowire.AppendTag(b, fTensorShape, protowire.BytesType)
	b = protowire.AppendBytes(b, marshalShape(t.Shape))
	if len(t.Content) > 0 {
		b = protowire.AppendTag(b, fTensorContent, protowire.BytesType)
		b = protowire.AppendBytes(b, t.Content)
	}
	if len(t.IntVal) > 0 {
		var p []byte
		for _, v := range t.IntVal {
			p = protowire.AppendVarint(p, uint64(int64(v)))
		}
		b = protowire.AppendTag(b, fTensorIntVal, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	return b
}

// errUnsupported marks a field Unmarshal does not model.
var errUnsupported = errors.New("unsupported field")

// Unmarshal decodes a GraphDef written by Marshal (or any GraphDef that
// uses only the fields this package models; versions and library are
// skipped).
func Unmarshal(b []byte) (*Graph, error) {
	g := &Graph{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == fGraphNode && typ == protowire.BytesType:
			n, err := unmarshalNode(v)
			if err != nil {
				return fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			g.Nodes = append(g.Nodes, n)
		case num == 2 || num == 3 || num == 4: // library, version (deprecated), versions
		default:
			return fmt.Errorf("graph field %d: %w", num, errUnsupported)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tfgraph: %w", err)
	}
	return g, nil
}

// fields calls f for each field of a message; v is a length-delimited
// field's bytes, x a varint or fixed field's value.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		default:
			return fmt.Errorf("field %d: wire type %d: %w", num, typ, errUnsupported)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func unmarshalNode(b []byte) (*Node, error) {
	n := &Node{Attrs: map[string]Attr{}}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return fmt.Errorf("node field %d: %w", num, errUnsupported)
		}
		switch num {
		case fNodeName:
			n.Name = string(v)
		case fNodeOp:
			n.Op = string(v)
		case fNodeInput:
			n.Inputs = append(n.Inputs, string(v))
		case 4: // device
		case fNodeAttr:
			var key string
			var val Attr
			var have bool
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if typ != protowire.BytesType {
					return fmt.Errorf("attr entry field %d: %w", num, errUnsupported)
				}
				switch num {
				case fMapKey:
					key = string(v)
				case fMapValue:
					a, err := unmarshalAttr(v)
					if err != nil {
						return err
					}
					val, have = a, true
				default:
					return fmt.Errorf("attr entry field %d: %w", num, errUnsupported)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !have {
				val = Attr{Kind: KindList} // an empty AttrValue: an empty list
			}
			n.Attrs[key] = val
		default:
			return fmt.Errorf("node field %d: %w", num, errUnsupported)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n.Name == "" || n.Op == "" {
		return nil, errors.New("node without a name or op")
	}
	return n, nil
}

func unmarshalAttr(b []byte) (Attr, error) {
	var a Attr
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch {
		case num == fAttrList && typ == protowire.BytesType:
			a.Kind = KindList
			a.List, err = unmarshalList(v)
		case num == fAttrS && typ == protowire.BytesType:
			a.Kind, a.S = KindS, slices.Clone(v)
		case num == fAttrI && typ == protowire.VarintType:
			a.Kind, a.I = KindI, int64(x)
		case num == fAttrF && typ == protowire.Fixed32Type:
			a.Kind, a.F = KindF, math.Float32frombits(uint32(x))
		case num == fAttrB && typ == protowire.VarintType:
			a.Kind, a.B = KindB, x != 0
		case num == fAttrType && typ == protowire.VarintType:
			a.Kind, a.Type = KindType, DataType(int32(x))
		case num == fAttrShape && typ == protowire.BytesType:
			a.Kind = KindShape
			a.Shape, err = unmarshalShape(v)
		case num == fAttrTensor && typ == protowire.BytesType:
			a.Kind = KindTensor
			a.Tensor, err = unmarshalTensor(v)
		default:
			err = fmt.Errorf("attr field %d: %w", num, errUnsupported)
		}
		return err
	})
	if a.Kind == 0 && err == nil {
		a.Kind = KindList
	}
	return a, err
}

func packed(typ protowire.Type, v []byte, x uint64, each func(uint64)) error {
	if typ != protowire.BytesType {
		each(x)
		return nil
	}
	for len(v) > 0 {
		y, n := protowire.ConsumeVarint(v)
		if n < 0 {
			return protowire.ParseError(n)
		}
		each(y)
		v = v[n:]
	}
	return nil
}

func unmarshalList(b []byte) (List, error) {
	var l List
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case fListS:
			if typ != protowire.BytesType {
				return fmt.Errorf("list.s: wire type %d", typ)
			}
			l.S = append(l.S, slices.Clone(v))
		case fListI:
			return packed(typ, v, x, func(y uint64) { l.I = append(l.I, int64(y)) })
		case fListB:
			return packed(typ, v, x, func(y uint64) { l.B = append(l.B, y != 0) })
		case fListType:
			return packed(typ, v, x, func(y uint64) { l.Type = append(l.Type, DataType(int32(y))) })
		case fListF:
			if typ == protowire.Fixed32Type {
				l.F = append(l.F, math.Float32frombits(uint32(x)))
				return nil
			}
			if typ != protowire.BytesType || len(v)%4 != 0 {
				return fmt.Errorf("list.f: bad encoding")
			}
			for i := 0; i < len(v); i += 4 {
				l.F = append(l.F, math.Float32frombits(binary.LittleEndian.Uint32(v[i:])))
			}
		default:
			return fmt.Errorf("list field %d: %w", num, errUnsupported)
		}
		return nil
	})
	return l, err
}

func unmarshalShape(b []byte) ([]int64, error) {
	dims := []int64{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fShapeDim && typ == protowire.BytesType:
			size := int64(0)
			err := fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				switch {
				case num == fDimSize && typ == protowire.VarintType:
					size = int64(x)
				case num == 2: // dim name
				default:
					return fmt.Errorf("dim field %d: %w", num, errUnsupported)
				}
				return nil
			})
			dims = append(dims, size)
			return err
		case num == fShapeUnknown:
			if x != 0 {
				return fmt.Errorf("unknown rank: %w", errUnsupported)
			}
			return nil
		}
		return fmt.Errorf("shape field %d: %w", num, errUnsupported)
	})
	return dims, err
}

func unmarshalTensor(b []byte) (*Tensor, error) {
	t := &Tensor{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch {
		case num == fTensorDType && typ == protowire.VarintType:
			t.DType = DataType(int32(x))
		case num == fTensorShape && typ == protowire.BytesType:
			t.Shape, err = unmarshalShape(v)
		case num == fTensorContent && typ == protowire.BytesType:
			t.Content = slices.Clone(v)
		case num == fTensorIntVal:
			err = packed(typ, v, x, func(y uint64) { t.IntVal = append(t.IntVal, int32(y)) })
		default:
			err = fmt.Errorf("tensor field %d: %w", num, errUnsupported)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	return t, nil
}
