package live_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/live"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// viewer is a Go WebRTC peer that asks hub for the camera's video and counts
// the RTP packets it receives.
type viewer struct {
	pc      *webrtc.PeerConnection
	packets atomic.Int64
	keySeen atomic.Bool
}

func connect(t *testing.T, url string) (*viewer, int) {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{pc: pc}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.packets.Add(1)
			// VP8 payload descriptor: S bit set and the frame header's P bit
			// clear mark the start of a keyframe.
			if len(p.Payload) > 4 && p.Payload[0]&0x10 != 0 {
				off := 1
				if p.Payload[0]&0x80 != 0 {
					off++
					if p.Payload[1]&0x80 != 0 {
						off++
						if len(p.Payload) > off && p.Payload[off-1]&0x80 != 0 {
							off++
						}
					}
				}
				if len(p.Payload) > off && p.Payload[off]&0x01 == 0 {
					v.keySeen.Store(true)
				}
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	body, _ := json.Marshal(pc.LocalDescription())
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var answer webrtc.SessionDescription
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	return v, resp.StatusCode
}

// redactedFrames makes redacted frames of a moving pattern.
func redactedFrames(t *testing.T, red *blur.Redactor, i int) *blur.Redacted {
	t.Helper()
	m := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC3)
	m.SetTo(gocv.NewScalar(80, 120, 60, 0))
	gocv.Circle(&m, image.Pt(40+(i*7)%240, 120), 30, color.RGBA{200, 200, 255, 0}, -1)
	r, err := red.Redact(m, blur.FacesPlan([]image.Rectangle{image.Rect(10, 10, 60, 60)}))
	if err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestTwoViewersShareOneStream: two Go WebRTC viewers connect to one
// camera; both receive VP8 (starting with a keyframe) from the one encoder,
// and a forged offer is refused without disturbing them.
func TestTwoViewersShareOneStream(t *testing.T) {
	hub, err := live.NewHub("door", live.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	srv := httptest.NewServer(hub)
	defer srv.Close()
	red, err := blur.NewRedactor(blur.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer red.Close()

	// With nobody watching, frames cost nothing and nothing is sent.
	for i := 0; i < 5; i++ {
		f := redactedFrames(t, red, i)
		if err := hub.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if hub.Frames() != 0 {
		t.Fatalf("sent %d frames with no viewer", hub.Frames())
	}

	a, _ := connect(t, srv.URL)
	b, _ := connect(t, srv.URL)
	forged, _ := json.Marshal(map[string]string{"type": "offer", "sdp": "v=0\r\nthis is not SDP\r\n"})
	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(forged))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged offer got %d, want 400", resp.StatusCode)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		f := redactedFrames(t, red, i)
		if err := hub.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		time.Sleep(40 * time.Millisecond)
		if a.packets.Load() > 20 && b.packets.Load() > 20 && a.keySeen.Load() && b.keySeen.Load() {
			break
		}
	}
	if hub.Viewers() != 2 {
		t.Errorf("viewers = %d, want 2", hub.Viewers())
	}
	for name, v := range map[string]*viewer{"a": a, "b": b} {
		if v.packets.Load() <= 20 || !v.keyGot() {
			t.Errorf("viewer %s: %d packets, keyframe %v", name, v.packets.Load(), v.keyGot())
		}
	}
	// A frame the encoder cannot take (too small for VP8) is not shown but
	// does not fail the camera's pipeline; the next good frame goes out.
	tiny := gocv.NewMatWithSize(8, 8, gocv.MatTypeCV8UC3)
	tr, err := red.Redact(tiny, blur.FacesPlan(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Write(&tr); err != nil {
		t.Errorf("a frame the encoder refused failed the pipeline: %v", err)
	}
	tr.Close()
	sent := hub.Frames()
	for i := 0; i < 10 && hub.Frames() == sent; i++ {
		f := redactedFrames(t, red, i)
		if err := hub.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if hub.Frames() == sent {
		t.Error("no frame sent after the refused one")
	}
	a.pc.Close()
	b.pc.Close()
}

func (v *viewer) keyGot() bool { return v.keySeen.Load() }
