package blur

import (
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// The Gaussian style blurs the padded region on its own, with its border
// mirrored (BORDER_REFLECT: the row or column at the edge repeats), and
// sigma = face width / SigmaDivisor.
//
// Sigmas above defaultMaxDirectSigma would need kernels hundreds of pixels
// wide, so they are blurred on a downscaled copy instead:
//
//  1. the region is shrunk by area averaging to ceil(size/step) pixels, so
//     that each small pixel averages a block of at most step×step pixels and
//     the blocks tile the region exactly;
//  2. the small image is blurred with the same sigma measured in blocks;
//  3. it is enlarged back bilinearly and smoothed with a box about one block
//     wide, which removes the kinks that linear interpolation leaves between
//     samples.
//
// Because the blocks tile the region exactly, mirroring the small image at
// its border is the same as mirroring the region, and steps 1 and 3 only add
// blur. TestGaussianDownscaleIsStronger checks the result against a
// full-resolution blur by the energy left in six bands, on float images.
const (
	// defaultMaxDirectSigma is the largest sigma blurred at full resolution.
	defaultMaxDirectSigma = 6
	// smallSigma is the least sigma, in blocks, of a downscaled blur; it sets
	// the block size.
	smallSigma = 3
	// meanFillRatio: a sigma of at least this fraction of the region's
	// longer side leaves little but the region's mean colour, so the region
	// is filled with its mean instead, the limit of a stronger blur.
	meanFillRatio = 0.5
	// gaussianBorder is how the region's border is extended.
	gaussianBorder = gocv.BorderReflect
)

// gaussian writes src, an 8UC3 (or float) region, blurred with the given
// sigma in pixels into dst, which gets src's size and type.
func (r *Redactor) gaussian(src gocv.Mat, dst *gocv.Mat, sigma float64) {
	w, h := src.Cols(), src.Rows()
	switch {
	case sigma >= meanFillRatio*float64(max(w, h)):
		src.CopyTo(dst) // gives dst src's size and type
		dst.SetTo(src.Mean())
	case sigma <= r.maxDirectSigma:
		r.blurIsolated(src, dst, sigma, sigma)
	default:
		r.downscaledGaussian(src, dst, sigma)
	}
}

// downscaledGaussian is gaussian for large sigmas; see the comment above.
func (r *Redactor) downscaledGaussian(src gocv.Mat, dst *gocv.Mat, sigma float64) {
	w, h := src.Cols(), src.Rows()
	step := math.Floor(sigma / smallSigma) // >= 2 as sigma > defaultMaxDirectSigma
	sw, sh := int(math.Ceil(float64(w)/step)), int(math.Ceil(float64(h)/step))
	gocv.Resize(src, &r.small, image.Pt(sw, sh), 0, 0, gocv.InterpolationArea)
	// Blocks are w/sw by h/sh pixels, at most step.
	r.blurIsolated(r.small, &r.smallBlur, sigma*float64(sw)/float64(w), sigma*float64(sh)/float64(h))
	gocv.Resize(r.smallBlur, &r.up, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
	box := int(step) | 1 // odd, so that the box is centred
	r.boxIsolated(r.up, dst, box)
}

// blurIsolated writes src blurred with sigmas sx, sy into dst, extending
// src's border with gaussianBorder and never reading beyond it. (OpenCV's
// BORDER_ISOLATED does the same far more slowly for small images.)
func (r *Redactor) blurIsolated(src gocv.Mat, dst *gocv.Mat, sx, sy float64) {
	kx, ky := kernelSize(sx), kernelSize(sy)
	inner := r.padded(src, kx/2, ky/2)
	defer inner.Close()
	gocv.GaussianBlur(inner, dst, image.Pt(kx, ky), sx, sy, gaussianBorder)
}

// boxIsolated writes src smoothed by a k×k box into dst, extending src's
// border with gaussianBorder.
func (r *Redactor) boxIsolated(src gocv.Mat, dst *gocv.Mat, k int) {
	inner := r.padded(src, k/2, k/2)
	defer inner.Close()
	gocv.Blur(inner, dst, image.Pt(k, k))
}

// padded copies src into r.border with mx columns and my rows of mirrored
// border on each side and returns the region of r.border that holds src; the
// caller closes it. Filters applied to that region read the mirrored border.
func (r *Redactor) padded(src gocv.Mat, mx, my int) gocv.Mat {
	gocv.CopyMakeBorder(src, &r.border, my, my, mx, mx, gaussianBorder|gocv.BorderIsolated, color.RGBA{})
	return r.border.Region(image.Rect(mx, my, mx+src.Cols(), my+src.Rows()))
}

// kernelSize returns the odd kernel size that covers ±3 sigma.
func kernelSize(sigma float64) int {
	return 2*int(math.Ceil(3*sigma)) + 1
}
