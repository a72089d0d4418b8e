package vp8

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include <string.h>
#include <vpx/vpx_encoder.h>
#include <vpx/vp8cx.h>

typedef struct {
	vpx_codec_ctx_t ctx;
	vpx_codec_enc_cfg_t cfg;
	vpx_image_t img;
	vpx_codec_iter_t iter;
	int inited;
} veil_vp8_enc;

static vpx_codec_err_t veil_enc_open(veil_vp8_enc *e, int w, int h, int tb_num, int tb_den,
		int kbps, int kf_max, int threads, int cpu_used, int partitions, int max_intra_pct) {
	vpx_codec_err_t err = vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &e->cfg, 0);
	if (err != VPX_CODEC_OK) return err;
	vpx_codec_enc_cfg_t *c = &e->cfg;
	c->g_w = w;
	c->g_h = h;
	c->g_timebase.num = tb_num;
	c->g_timebase.den = tb_den;
	c->g_threads = threads;
	c->g_pass = VPX_RC_ONE_PASS;
	c->g_lag_in_frames = 0;
	c->g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
	c->rc_end_usage = VPX_CBR;
	c->rc_target_bitrate = kbps;
	c->rc_min_quantizer = 4;
	c->rc_max_quantizer = 56;
	c->rc_undershoot_pct = 100;
	c->rc_overshoot_pct = 15;
	c->rc_buf_initial_sz = 500;
	c->rc_buf_optimal_sz = 600;
	c->rc_buf_sz = 1000;
	c->rc_dropframe_thresh = 30;
	c->rc_resize_allowed = 0;
	c->kf_mode = VPX_KF_AUTO;
	c->kf_min_dist = 0;
	c->kf_max_dist = kf_max;
	err = vpx_codec_enc_init(&e->ctx, vpx_codec_vp8_cx(), c, 0);
	if (err != VPX_CODEC_OK) return err;
	e->inited = 1;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_CPUUSED, cpu_used)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_NOISE_SENSITIVITY, 0)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_TOKEN_PARTITIONS, partitions)) != VPX_CODEC_OK) return err;
	return vpx_codec_control(&e->ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, max_intra_pct);
}

// veil_enc_encode wraps the contiguous I420 buffer (Y, then U, then V, no
// padding) without copying and encodes it.
static vpx_codec_err_t veil_enc_encode(veil_vp8_enc *e, unsigned char *i420, int w, int h,
		int64_t pts, int force_key) {
	if (vpx_img_wrap(&e->img, VPX_IMG_FMT_I420, w, h, 1, i420) == NULL) return VPX_CODEC_INVALID_PARAM;
	e->iter = NULL;
	return vpx_codec_encode(&e->ctx, &e->img, pts, 1, force_key ? VPX_EFLAG_FORCE_KF : 0, VPX_DL_REALTIME);
}

// veil_enc_next returns 1 and the next compressed frame packet, or 0 when
// there are none left for the last veil_enc_encode.
static int veil_enc_next(veil_vp8_enc *e, const void **buf, size_t *sz, int *key, int64_t *pts) {
	const vpx_codec_cx_pkt_t *p;
	while ((p = vpx_codec_get_cx_data(&e->ctx, &e->iter)) != NULL) {
		if (p->kind != VPX_CODEC_CX_FRAME_PKT) continue;
		*buf = p->data.frame.buf;
		*sz = p->data.frame.sz;
		*key = (p->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
		*pts = p->data.frame.pts;
		return 1;
	}
	return 0;
}

static const char *veil_enc_detail(veil_vp8_enc *e) {
	if (!e->inited) return NULL;
	return vpx_codec_error_detail(&e->ctx);
}

static void veil_enc_close(veil_vp8_enc *e) {
	if (e->inited) vpx_codec_destroy(&e->ctx);
	e->inited = 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"gocv.io/x/gocv"
)

// Errors returned by the Encoder and Decoder.
var (
	// ErrClosed is returned by calls on a closed Encoder or Decoder.
	ErrClosed = errors.New("vp8: closed")
	// ErrFrame is wrapped when a frame has the wrong size or type.
	ErrFrame = errors.New("vp8: bad frame")
	// ErrCodec is wrapped by errors reported by libvpx.
	ErrCodec = errors.New("vp8: libvpx error")
)

// cpuUsed is VP8E_SET_CPUUSED: higher is faster and lower quality. A
// positive value lets libvpx lower quality further whenever a frame took
// long to encode (a busy CPU); the negative value fixes the speed at 10, so
// quality does not depend on what else the box is doing.
const cpuUsed = -10

// Frame is one compressed VP8 frame.
type Frame struct {
	// Data is the VP8 frame, owned by the caller; empty when the encoder
	// dropped the frame to hold its bitrate.
	Data []byte
	// Key reports a keyframe, which a decoder can start from.
	Key bool
	// PTS is the frame's presentation time in frames of 1/FPS seconds:
	// the count of Encode calls before this one.
	PTS int64
}

// Encoder encodes BGR frames (gocv.Mat, CV_8UC3, of the size in its Options)
// to VP8 for real-time streaming: constant bitrate, no look-ahead (each
// Encode returns the frame it was given), error-resilient mode, and a
// keyframe at least every KeyframeInterval frames.
//
// An Encoder is not safe for concurrent use. Its owner must call Close.
type Encoder struct {
	o    Options
	c    *C.veil_vp8_enc
	i420 gocv.Mat // reused BGR→I420 conversion buffer, (H*3/2)×W CV_8UC1
	pts  int64
}

// NewEncoder validates o and opens a VP8 encoder.
func NewEncoder(o Options) (*Encoder, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.WithDefaults()
	c := (*C.veil_vp8_enc)(C.calloc(1, C.size_t(unsafe.Sizeof(C.veil_vp8_enc{}))))
	if c == nil {
		return nil, fmt.Errorf("%w: allocating encoder", ErrCodec)
	}
	// Time base: one tick per frame, FPS given to a thousandth.
	tbDen := int(math.Round(o.FPS * 1000))
	partitions := 0 // log2 of token partitions, one per thread up to 8
	for p := 1; p*2 <= o.Threads && partitions < 3; p *= 2 {
		partitions++
	}
	// Cap a keyframe at the bits of half the optimal buffer (as WebRTC
	// does), in percent of an average frame; never below 300 %.
	maxIntra := int(0.5 * 600 * o.FPS / 10)
	if maxIntra < 300 {
		maxIntra = 300
	}
	rc := C.veil_enc_open(c, C.int(o.Width), C.int(o.Height), 1000, C.int(tbDen),
		C.int(o.BitrateKbps), C.int(o.KeyframeInterval), C.int(o.Threads),
		C.int(cpuUsed), C.int(partitions), C.int(maxIntra))
	if rc != C.VPX_CODEC_OK {
		err := codecErr("opening encoder", rc, C.veil_enc_detail(c))
		C.veil_enc_close(c)
		C.free(unsafe.Pointer(c))
		return nil, err
	}
	return &Encoder{o: o, c: c, i420: gocv.NewMat()}, nil
}

// Options returns the encoder's options with defaults applied.
func (e *Encoder) Options() Options { return e.o }

// Encode compresses frame, a BGR CV_8UC3 Mat of the encoder's size, and
// returns it; forceKey makes it a keyframe. The returned Frame's Data is
// empty when the encoder dropped the frame to hold its bitrate; PTS
// advances on every call either way. Encode does not keep frame.
func (e *Encoder) Encode(frame gocv.Mat, forceKey bool) (Frame, error) {
	if e.c == nil {
		return Frame{}, ErrClosed
	}
	w, h := e.o.Width, e.o.Height
	if frame.Empty() {
		return Frame{}, fmt.Errorf("%w: empty Mat, want %dx%d CV_8UC3", ErrFrame, w, h)
	}
	if frame.Cols() != w || frame.Rows() != h || frame.Type() != gocv.MatTypeCV8UC3 {
		return Frame{}, fmt.Errorf("%w: got %dx%d %v, want %dx%d CV_8UC3",
			ErrFrame, frame.Cols(), frame.Rows(), frame.Type(), w, h)
	}
	gocv.CvtColor(frame, &e.i420, gocv.ColorBGRToYUVI420)
	yuv, err := e.i420.DataPtrUint8()
	if err != nil {
		return Frame{}, fmt.Errorf("vp8: converting to I420: %w", err)
	}
	if len(yuv) != w*h*3/2 {
		return Frame{}, fmt.Errorf("vp8: converting to I420: got %d bytes, want %d", len(yuv), w*h*3/2)
	}
	pts := e.pts
	e.pts++
	force := C.int(0)
	if forceKey {
		force = 1
	}
	// yuv is OpenCV's memory, not Go's: libvpx may read it freely.
	rc := C.veil_enc_encode(e.c, (*C.uchar)(unsafe.Pointer(&yuv[0])), C.int(w), C.int(h), C.int64_t(pts), force)
	if rc != C.VPX_CODEC_OK {
		return Frame{}, codecErr("encoding", rc, C.veil_enc_detail(e.c))
	}
	out := Frame{PTS: pts}
	n := 0
	for {
		var (
			buf  unsafe.Pointer
			sz   C.size_t
			key  C.int
			ppts C.int64_t
		)
		if C.veil_enc_next(e.c, &buf, &sz, &key, &ppts) == 0 {
			break
		}
		n++
		if n > 1 {
			return Frame{}, fmt.Errorf("%w: encoder returned more than one frame for one input", ErrCodec)
		}
		out = Frame{Data: C.GoBytes(buf, C.int(sz)), Key: key != 0, PTS: int64(ppts)}
	}
	return out, nil
}

// Close frees the encoder's C memory and its conversion buffer. Calling it
// again does nothing.
func (e *Encoder) Close() error {
	if e.c == nil {
		return nil
	}
	C.veil_enc_close(e.c)
	C.free(unsafe.Pointer(e.c))
	e.c = nil
	return e.i420.Close()
}

func codecErr(doing string, rc C.vpx_codec_err_t, detail *C.char) error {
	msg := C.GoString(C.vpx_codec_err_to_string(rc))
	if detail != nil {
		msg += ": " + C.GoString(detail)
	}
	return fmt.Errorf("%w: %s: %s", ErrCodec, doing, msg)
}
