// Package live streams a camera's redacted frames to operators' browsers
// over WebRTC (pion/webrtc v3, VP8 from libvpx).
//
// A Hub is one camera's stream: it is a pipeline.Sink, so the only frames it
// can ever see are *blur.Redacted ones. It encodes once, whatever the number
// of viewers, and sends the same VP8 frames to every viewer's peer
// connection; with no viewer it encodes nothing.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"
	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/live/vp8"
	"github.com/veil-edge/veil/pipeline"
)

// Options tunes a Hub.
type Options struct {
	BitrateKbps int           // VP8 target bitrate; default 1500
	MaxViewers  int           // refuse more viewers than this; default 8
	Gather      time.Duration // how long to wait for ICE candidates; default 3s
	Log         *slog.Logger
}

const (
	rtpMTU       = 1200  // bytes per RTP packet, as pion's own sample tracks use
	vp8ClockRate = 90000 // RTP clock of video
)

// Hub is one camera's live stream.
type Hub struct {
	name  string
	o     Options
	api   *webrtc.API
	track *webrtc.TrackLocalStaticRTP
	log   *slog.Logger

	encMu sync.Mutex // guards enc, w, h, last, lastErr, packer
	enc   *vp8.Encoder
	// packer stamps each frame with the wall-clock time it is sent (90 kHz
	// RTP clock). Frames leave the pipeline in bursts (those waiting for one
	// detection at once); stamping them as sent, not as if evenly spaced,
	// keeps the browser's jitter buffer, and so its delay, small.
	packer  rtp.Packetizer
	w, h    int
	last    time.Time
	lastErr time.Time

	mu      sync.Mutex
	viewers map[*webrtc.PeerConnection]struct{}
	closed  bool

	forceKey atomic.Bool
	frames   atomic.Int64 // frames sent
}

var _ pipeline.Sink = (*Hub)(nil)

// NewHub makes the live stream of camera name.
func NewHub(name string, o Options) (*Hub, error) {
	if o.BitrateKbps <= 0 {
		o.BitrateKbps = 1500
	}
	if o.MaxViewers <= 0 {
		o.MaxViewers = 8
	}
	if o.Gather <= 0 {
		o.Gather = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: 96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	// No mDNS and no STUN: the box talks to browsers on the shop network
	// with host candidates only, and to nobody else.
	se.SetICEMulticastDNSMode(0)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "veil-"+name)
	if err != nil {
		return nil, err
	}
	return &Hub{name: name, o: o, api: api, track: track, log: o.Log.With("camera", name), viewers: map[*webrtc.PeerConnection]struct{}{}}, nil
}

// Viewers is the number of connected viewers.
func (h *Hub) Viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.viewers)
}

// Frames is how many frames were sent to viewers.
func (h *Hub) Frames() int64 { return h.frames.Load() }

// Write encodes a redacted frame once and sends it to every viewer. With no
// viewer it does nothing. It never fails the camera's pipeline: the live
// view is a side stream, so an encoding error is logged (at most every 10 s)
// and the frame is not shown, while redaction and counting go on.
func (h *Hub) Write(f *blur.Redacted) error {
	if h.Viewers() == 0 || f.Empty() {
		return nil
	}
	h.encMu.Lock()
	defer h.encMu.Unlock()
	if err := f.Read(h.encode); err != nil && time.Since(h.lastErr) > 10*time.Second {
		h.lastErr = time.Now()
		h.log.Error("live: frame not sent to viewers", "err", err)
	}
	return nil
}

// encode encodes m (read-only, borrowed from a Redacted) and sends it. VP8
// needs even sizes: an odd last row or column is left out. Called with encMu.
func (h *Hub) encode(m gocv.Mat) error {
	w, hgt := m.Cols()&^1, m.Rows()&^1
	if h.enc == nil || h.w != w || h.h != hgt {
		if h.enc != nil {
			h.enc.Close()
			h.enc = nil
		}
		enc, err := vp8.NewEncoder(vp8.Options{Width: w, Height: hgt, FPS: 25, BitrateKbps: h.o.BitrateKbps})
		if err != nil {
			return fmt.Errorf("live %s: %w", h.name, err)
		}
		h.enc, h.w, h.h = enc, w, hgt
		h.forceKey.Store(true)
	}
	src := m
	if w != m.Cols() || hgt != m.Rows() {
		src = m.Region(image.Rect(0, 0, w, hgt))
		defer src.Close()
	}
	out, err := h.enc.Encode(src, h.forceKey.Swap(false))
	if err != nil {
		return fmt.Errorf("live %s: %w", h.name, err)
	}
	if len(out.Data) == 0 {
		return nil // dropped by rate control
	}
	now := time.Now()
	if h.packer == nil {
		// SSRC and payload type are set per viewer by the track.
		h.packer = rtp.NewPacketizer(rtpMTU, 0, 0, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), vp8ClockRate)
	} else {
		h.packer.SkipSamples(uint32(now.Sub(h.last).Seconds() * vp8ClockRate))
	}
	h.last = now
	for _, pkt := range h.packer.Packetize(out.Data, 0) {
		if err := h.track.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			h.log.Debug("live: write RTP", "err", err)
		}
	}
	h.frames.Add(1)
	return nil
}

// Offer answers a viewer's SDP offer: a new peer connection receiving this
// camera's track. The answer carries all ICE candidates (no trickle).
func (h *Hub) Offer(ctx context.Context, offer webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	if offer.Type != webrtc.SDPTypeOffer || offer.SDP == "" {
		return webrtc.SessionDescription{}, errBadOffer
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return webrtc.SessionDescription{}, errors.New("live: camera stream closed")
	}
	if len(h.viewers) >= h.o.MaxViewers {
		h.mu.Unlock()
		return webrtc.SessionDescription{}, fmt.Errorf("live: camera %s already has %d viewers (the most allowed)", h.name, h.o.MaxViewers)
	}
	h.mu.Unlock()
	pc, err := h.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	fail := func(err error) (webrtc.SessionDescription, error) {
		pc.Close()
		return webrtc.SessionDescription{}, err
	}
	sender, err := pc.AddTrack(h.track)
	if err != nil {
		return fail(err)
	}
	go h.readRTCP(sender)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			h.forceKey.Store(true) // a new viewer starts with a keyframe
			h.log.Info("live viewer connected", "viewers", h.Viewers())
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateDisconnected:
			h.drop(pc)
		}
	})
	if err := pc.SetRemoteDescription(offer); err != nil {
		return fail(fmt.Errorf("%w: %v", errBadOffer, err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", errBadOffer, err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-time.After(h.o.Gather):
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fail(errors.New("live: camera stream closed"))
	}
	h.viewers[pc] = struct{}{}
	h.mu.Unlock()
	return *pc.LocalDescription(), nil
}

var errBadOffer = errors.New("not a valid WebRTC offer")

// readRTCP drains the sender's RTCP and asks for a keyframe on PLI or FIR.
func (h *Hub) readRTCP(s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				h.forceKey.Store(true)
			}
		}
	}
}

func (h *Hub) drop(pc *webrtc.PeerConnection) {
	h.mu.Lock()
	_, ok := h.viewers[pc]
	delete(h.viewers, pc)
	n := len(h.viewers)
	h.mu.Unlock()
	if ok {
		_ = pc.Close()
		h.log.Info("live viewer left", "viewers", n)
	}
}

// Close disconnects every viewer and frees the encoder.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	pcs := make([]*webrtc.PeerConnection, 0, len(h.viewers))
	for pc := range h.viewers {
		pcs = append(pcs, pc)
	}
	h.viewers = map[*webrtc.PeerConnection]struct{}{}
	h.mu.Unlock()
	for _, pc := range pcs {
		_ = pc.Close()
	}
	h.encMu.Lock()
	defer h.encMu.Unlock()
	if h.enc != nil {
		h.enc.Close()
		h.enc = nil
	}
	return nil
}

// ServeHTTP answers POST {"type":"offer","sdp":"..."} with the answer as
// JSON. A malformed or forged offer gets 400 and changes nothing else.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an SDP offer", http.StatusMethodNotAllowed)
		return
	}
	var offer webrtc.SessionDescription
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&offer); err != nil {
		h.log.Warn("live: refused an offer that is not JSON", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "body must be {\"type\":\"offer\",\"sdp\":...}", http.StatusBadRequest)
		return
	}
	answer, err := h.Offer(r.Context(), offer)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, errBadOffer) {
			status = http.StatusBadRequest
		}
		h.log.Warn("live: refused an offer", "err", err, "remote", r.RemoteAddr)
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}
