package vp8

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include <string.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vp8dx.h>

typedef struct {
	vpx_codec_ctx_t ctx;
	int inited;
} veil_vp8_dec;

static vpx_codec_err_t veil_dec_open(veil_vp8_dec *d) {
	vpx_codec_dec_cfg_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.threads = 1;
	vpx_codec_err_t err = vpx_codec_dec_init(&d->ctx, vpx_codec_vp8_dx(), &cfg, 0);
	if (err == VPX_CODEC_OK) d->inited = 1;
	return err;
}

// veil_dec_decode decodes one frame and returns its image, or NULL with
// *err set (VPX_CODEC_OK when the data held no frame to show).
static vpx_image_t *veil_dec_decode(veil_vp8_dec *d, const unsigned char *data, unsigned int sz,
		vpx_codec_err_t *err) {
	*err = vpx_codec_decode(&d->ctx, data, sz, NULL, 0);
	if (*err != VPX_CODEC_OK) return NULL;
	vpx_codec_iter_t iter = NULL;
	vpx_image_t *img = NULL, *next;
	while ((next = vpx_codec_get_frame(&d->ctx, &iter)) != NULL) img = next;
	return img;
}

// veil_dec_copy copies an 8-bit I420 image into dst, a contiguous buffer of
// d_w*d_h*3/2 bytes (Y, then U, then V). d_w and d_h must be even.
static int veil_dec_copy(const vpx_image_t *img, unsigned char *dst) {
	if (img->fmt != VPX_IMG_FMT_I420) return -1;
	unsigned int w = img->d_w, h = img->d_h, y;
	for (y = 0; y < h; y++) {
		memcpy(dst, img->planes[VPX_PLANE_Y] + (size_t)y * img->stride[VPX_PLANE_Y], w);
		dst += w;
	}
	for (int p = VPX_PLANE_U; p <= VPX_PLANE_V; p++) {
		for (y = 0; y < h / 2; y++) {
			memcpy(dst, img->planes[p] + (size_t)y * img->stride[p], w / 2);
			dst += w / 2;
		}
	}
	return 0;
}

static const char *veil_dec_detail(veil_vp8_dec *d) {
	if (!d->inited) return NULL;
	return vpx_codec_error_detail(&d->ctx);
}

static void veil_dec_close(veil_vp8_dec *d) {
	if (d->inited) vpx_codec_destroy(&d->ctx);
	d->inited = 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gocv.io/x/gocv"
)

// ErrNoFrame is returned by Decode when the data decoded but held no frame
// to show.
var ErrNoFrame = errors.New("vp8: no frame decoded")

// Decoder decodes VP8 frames to BGR. It exists for tests and tools.
//
// A Decoder is not safe for concurrent use. Its owner must call Close.
type Decoder struct {
	c    *C.veil_vp8_dec
	in   unsafe.Pointer // C copy of the compressed frame, grown as needed
	inN  int
	i420 gocv.Mat // reused decoded I420 image, (H*3/2)×W CV_8UC1
}

// NewDecoder opens a single-threaded VP8 decoder.
func NewDecoder() (*Decoder, error) {
	c := (*C.veil_vp8_dec)(C.calloc(1, C.size_t(unsafe.Sizeof(C.veil_vp8_dec{}))))
	if c == nil {
		return nil, fmt.Errorf("%w: allocating decoder", ErrCodec)
	}
	if rc := C.veil_dec_open(c); rc != C.VPX_CODEC_OK {
		err := codecErr("opening decoder", rc, C.veil_dec_detail(c))
		C.free(unsafe.Pointer(c))
		return nil, err
	}
	return &Decoder{c: c, i420: gocv.NewMat()}, nil
}

// Decode decodes one VP8 frame, in stream order, into dst as a BGR CV_8UC3
// Mat of the stream's size (dst is reallocated if needed; the caller keeps
// owning it). Decode does not keep data.
func (d *Decoder) Decode(data []byte, dst *gocv.Mat) error {
	if d.c == nil {
		return ErrClosed
	}
	if len(data) == 0 {
		return fmt.Errorf("%w: empty data", ErrFrame)
	}
	// libvpx gets a C copy, so no Go pointer is held across the call.
	if len(data) > d.inN {
		C.free(d.in)
		d.in = C.malloc(C.size_t(len(data)))
		if d.in == nil {
			d.inN = 0
			return fmt.Errorf("%w: allocating %d bytes", ErrCodec, len(data))
		}
		d.inN = len(data)
	}
	copy(unsafe.Slice((*byte)(d.in), len(data)), data)
	var rc C.vpx_codec_err_t
	img := C.veil_dec_decode(d.c, (*C.uchar)(d.in), C.uint(len(data)), &rc)
	if rc != C.VPX_CODEC_OK {
		return codecErr("decoding", rc, C.veil_dec_detail(d.c))
	}
	if img == nil {
		return ErrNoFrame
	}
	w, h := int(img.d_w), int(img.d_h)
	if w%2 != 0 || h%2 != 0 {
		return fmt.Errorf("%w: decoded %dx%d, odd sizes are not supported", ErrFrame, w, h)
	}
	if d.i420.Rows() != h*3/2 || d.i420.Cols() != w {
		d.i420.Close()
		d.i420 = gocv.NewMatWithSize(h*3/2, w, gocv.MatTypeCV8UC1)
	}
	buf, err := d.i420.DataPtrUint8()
	if err != nil || len(buf) != w*h*3/2 {
		return fmt.Errorf("vp8: decode buffer: %v (%d bytes, want %d)", err, len(buf), w*h*3/2)
	}
	if C.veil_dec_copy(img, (*C.uchar)(unsafe.Pointer(&buf[0]))) != 0 {
		return fmt.Errorf("%w: decoded image is not 8-bit I420", ErrCodec)
	}
	gocv.CvtColor(d.i420, dst, gocv.ColorYUVToBGRIYUV)
	return nil
}

// Close frees the decoder's C memory and buffers. Calling it again does
// nothing.
func (d *Decoder) Close() error {
	if d.c == nil {
		return nil
	}
	C.veil_dec_close(d.c)
	C.free(unsafe.Pointer(d.c))
	d.c = nil
	C.free(d.in)
	d.in, d.inN = nil, 0
	return d.i420.Close()
}
