package run_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/run"
	"github.com/veil-edge/veil/web"
)

// startLiveService runs veil run's service with the live view on (operator
// password "correct horse") and one looping camera "door" playing video. It
// returns the service, the web server's base URL and a stop function that
// shuts both down and reports their errors.
func startLiveService(t *testing.T, cfg config.Config, video string) (*run.Service, string, func()) {
	t.Helper()
	hash, err := web.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.PasswordHash = hash
	cfg.HTTP.Listen = "127.0.0.1:0"
	cams := []config.Camera{{Name: "door", Source: video, Loop: true}}
	svc, err := run.New(run.Options{Config: cfg, Cameras: cams, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, served := make(chan error, 1), make(chan error, 1)
	go func() { served <- svc.Serve(ctx, l) }()
	go func() { done <- svc.Run(ctx) }()
	return svc, "http://" + l.Addr().String(), func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	}
}

// TestLiveViewEndToEnd runs veil run's service with the live view on: an
// operator logs in over HTTP, reads the CSRF token from the camera page,
// and a Go WebRTC viewer gets the camera's VP8 stream. Without a session,
// or with a forged offer, it is refused.
func TestLiveViewEndToEnd(t *testing.T) {
	svc, base, stop := startLiveService(t, testConfig(t), scene(t))
	defer stop()

	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	offerURL := base + "/api/cameras/door/offer"
	// No session: refused.
	resp0, err := client.Post(offerURL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp0.Body.Close()
	if resp0.StatusCode != http.StatusUnauthorized {
		t.Fatalf("offer without a session: %s", resp0.Status)
	}
	// Wrong password: refused.
	post := func(pw string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"user": {"operator"}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %s", resp.Status)
	}
	if resp := post("correct horse"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<meta name="veil-csrf" content="([^"]+)">`).FindSubmatch(page)
	if m == nil || !bytes.Contains(page, []byte(`id="video-door"`)) || !bytes.Contains(page, []byte(`/live.js`)) {
		t.Fatalf("camera page without CSRF token, video element or script:\n%s", page)
	}
	csrf := string(m[1])
	offer := func(body []byte) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, offerURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(web.CSRFHeader, csrf)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	forged, _ := json.Marshal(map[string]string{"type": "offer", "sdp": "garbage"})
	if r := offer(forged); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged offer: %s", r.Status)
	} else {
		r.Body.Close()
	}

	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var packets atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if !strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeVP8) {
			t.Errorf("codec %s, want VP8", tr.Codec().MimeType)
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			packets.Add(1)
		}
	})
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	body, _ := json.Marshal(pc.LocalDescription())
	r := offer(body)
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("offer: %s", r.Status)
	}
	var answer webrtc.SessionDescription
	if err := json.NewDecoder(r.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for packets.Load() < 30 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if packets.Load() < 30 {
		t.Fatalf("viewer received %d RTP packets in 15 s", packets.Load())
	}
	if h := svc.Health(); h.Cameras[0].Viewers != 1 {
		t.Errorf("health reports %d viewers, want 1", h.Cameras[0].Viewers)
	}
}
