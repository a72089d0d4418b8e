package blur

import (
	"image"
	"math"

	"gocv.io/x/gocv"
)

// mosaicBlock returns the side of a square mosaic block for a face of width
// faceW split into blocks blocks: ceil(faceW / blocks), at least 1.
func mosaicBlock(faceW float64, blocks int) int {
	return max(1, int(math.Ceil(faceW/float64(blocks))))
}

// mosaic writes src pixelated into dst, which has src's size and type. The
// block grid starts at the region's top-left corner; the last column and row
// of blocks absorb the remainder, so no block is smaller than block×block
// unless the whole region is.
func mosaic(src gocv.Mat, dst *gocv.Mat, block int) {
	xs := blockEdges(src.Cols(), block)
	ys := blockEdges(src.Rows(), block)
	for j := 1; j < len(ys); j++ {
		for i := 1; i < len(xs); i++ {
			cell := image.Rect(xs[i-1], ys[j-1], xs[i], ys[j])
			s := src.Region(cell)
			mean := s.Mean()
			s.Close()
			d := dst.Region(cell)
			d.SetTo(mean)
			d.Close()
		}
	}
}

// blockEdges splits 0..n into max(1, n/block) cells of block pixels, the last
// one taking the remainder, and returns the cell edges.
func blockEdges(n, block int) []int {
	cells := max(1, n/block)
	edges := make([]int, cells+1)
	for i := range cells {
		edges[i] = i * block
	}
	edges[cells] = n
	return edges
}
