package tfgraph

import (
	"errors"
	"fmt"
)

// InputSize returns the height and width of the graph's one NHWC
// Placeholder.
func (g *Graph) InputSize() (h, w int, err error) {
	p, err := g.placeholder()
	if err != nil {
		return 0, 0, err
	}
	s := p.Attrs["shape"].Shape
	return int(s[1]), int(s[2]), nil
}

func (g *Graph) placeholder() (*Node, error) {
	var p *Node
	for _, n := range g.Nodes {
		if n.Op != "Placeholder" {
			continue
		}
		if p != nil {
			return nil, errors.New("tfgraph: more than one input")
		}
		p = n
	}
	if p == nil {
		return nil, errors.New("tfgraph: no input")
	}
	if a, ok := p.Attrs["shape"]; !ok || a.Kind != KindShape || len(a.Shape) != 4 || a.Shape[1] <= 0 || a.Shape[2] <= 0 {
		return nil, errors.New("tfgraph: the input has no NHWC shape with a fixed size")
	}
	return p, nil
}

// Resize makes a fully convolutional graph take an h x w input: the input's
// shape is set, and the constant output sizes of every ResizeBilinear and
// ResizeNearestNeighbor are scaled from the old input size to the new one.
// The sizes must scale exactly (every resize must keep its ratio to the
// input), else the graph is refused: a detector's feature maps would no
// longer line up.
func (g *Graph) Resize(h, w int) error {
	p, err := g.placeholder()
	if err != nil {
		return err
	}
	oh, ow := p.Attrs["shape"].Shape[1], p.Attrs["shape"].Shape[2]
	byName := map[string]*Node{}
	for _, n := range g.Nodes {
		byName[n.Name] = n
	}
	type edit struct {
		t    *Tensor
		h, w int32
	}
	var edits []edit
	for _, n := range g.Nodes {
		if n.Op != "ResizeBilinear" && n.Op != "ResizeNearestNeighbor" {
			continue
		}
		if len(n.Inputs) != 2 {
			return fmt.Errorf("tfgraph: %s %q has %d inputs", n.Op, n.Name, len(n.Inputs))
		}
		c := byName[inputName(n.Inputs[1])]
		if c == nil || c.Op != "Const" || c.Attrs["value"].Tensor == nil || len(c.Attrs["value"].Tensor.IntVal) != 2 {
			return fmt.Errorf("tfgraph: %s %q: size is not a constant pair", n.Op, n.Name)
		}
		t := c.Attrs["value"].Tensor
		sh, sw := int64(t.IntVal[0]), int64(t.IntVal[1])
		if sh*int64(h)%oh != 0 || sw*int64(w)%ow != 0 {
			return fmt.Errorf("tfgraph: %s %q: size %dx%d at input %dx%d does not scale to input %dx%d", n.Op, n.Name, sw, sh, ow, oh, w, h)
		}
		edits = append(edits, edit{t, int32(sh * int64(h) / oh), int32(sw * int64(w) / ow)})
	}
	for _, e := range edits {
		e.t.IntVal = []int32{e.h, e.w}
	}
	shape := append([]int64{}, p.Attrs["shape"].Shape...)
	shape[1], shape[2] = int64(h), int64(w)
	p.Attrs["shape"] = Attr{Kind: KindShape, Shape: shape}
	return nil
}
