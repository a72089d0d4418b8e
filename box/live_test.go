package box_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
	"github.com/veil-edge/veil/web"
)

// startLiveService runs veil run's service with the live view on (operator
// password "correct horse") and the cameras cams. It returns the service,
// the web server's base URL and a stop function that shuts both down and
// reports their errors. The service logs into logs.
func startLiveService(t testing.TB, cfg config.Config, cams []config.Camera, logs io.Writer) (*box.Service, string, func()) {
	t.Helper()
	hash, err := web.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.PasswordHash = hash
	cfg.HTTP.Listen = "127.0.0.1:0"
	svc, err := box.New(box.Options{Config: cfg, Cameras: cams, Log: slog.New(slog.NewTextHandler(logs, nil))})
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
	scheme := "http://"
	if cfg.HTTP.TLSCert != "" {
		scheme = "https://"
	}
	return svc, scheme + l.Addr().String(), func() {
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
	var logs testenv.Buffer
	cfg := testConfig(t)
	svc, base, stop := startLiveService(t, cfg, []config.Camera{{Name: "door", Source: scene(t), Loop: true}}, &logs)
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
	post := func(pw string) *http.Response { return postLogin(t, client, base, pw, nil) }
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

	packets, closeViewer := goViewer(t, offer)
	defer closeViewer()
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
	// Every refusal above was logged.
	for _, want := range []string{"refused request", "login failed", "live: refused an offer"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log has no %q:\n%s", want, logs.String())
		}
	}

	// /metrics has every per-camera series the operator graphs, with values
	// that show the camera working (fps in after its first 2 s window).
	var got map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got = scrape(t, base+"/metrics")
		if got[`veil_camera_fps_in{camera="door"}`] > 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, name := range []string{"veil_camera_fps", "veil_camera_fps_in", "veil_camera_frames_total", "veil_camera_frames_in_total",
		"veil_camera_detect_seconds_count", "veil_camera_detect_seconds_sum", "veil_camera_redact_seconds_count", "veil_camera_redact_seconds_sum", "veil_camera_viewers"} {
		if v := got[name+`{camera="door"}`]; v <= 0 {
			t.Errorf("metric %s for camera door is %v, want > 0", name, v)
		}
	}
	for _, name := range []string{"veil_camera_frames_dropped_total", "veil_camera_frames_redacted_whole_total"} {
		if _, ok := got[name+`{camera="door"}`]; !ok {
			t.Errorf("metric %s for camera door missing", name)
		}
	}
	// The box's detection service ran this camera's passes.
	if got["veil_detect_passes_total"] <= 0 || got["veil_detect_networks_built_total"] <= 0 {
		t.Errorf("detection service metrics: passes %v, networks built %v; want > 0", got["veil_detect_passes_total"], got["veil_detect_networks_built_total"])
	}
	if _, ok := got["veil_detect_passes_late_total"]; !ok {
		t.Error("metric veil_detect_passes_late_total missing")
	}
	if d := svc.Health().Detect; d == nil || d.Networks != cfg.Detect.Threads || d.Passes <= 0 {
		t.Errorf("/healthz detection service: %+v; want %d networks and passes run", d, cfg.Detect.Threads)
	}
	if ms := got[`veil_camera_detect_seconds_sum{camera="door"}`] / got[`veil_camera_detect_seconds_count{camera="door"}`] * 1000; ms < 0.1 || ms > 5000 {
		t.Errorf("mean detection %.2f ms per keyframe is not plausible", ms)
	}
}

// goViewer is a WebRTC viewer in Go: it sends its offer with offer and
// counts the camera's RTP packets until the returned function closes it.
func goViewer(t testing.TB, offer func(body []byte) *http.Response) (*atomic.Int64, func()) {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		pc.Close()
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
		pc.Close()
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		pc.Close()
		t.Fatal(err)
	}
	<-gathered
	body, _ := json.Marshal(pc.LocalDescription())
	r := offer(body)
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		pc.Close()
		t.Fatalf("offer: %s", r.Status)
	}
	var answer webrtc.SessionDescription
	if err := json.NewDecoder(r.Body).Decode(&answer); err != nil {
		pc.Close()
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		pc.Close()
		t.Fatal(err)
	}
	return &packets, func() { _ = pc.Close() }
}

// scrape reads a Prometheus text exposition into series -> value.
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestLiveViewHTTPS: with http.tls_cert the operator page is served over
// HTTPS only, and the session cookie is marked Secure.
func TestLiveViewHTTPS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	cfg := testConfig(t)
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = pki.ServerCert, pki.ServerKey
	_, base, stop := startLiveService(t, cfg, []config.Camera{{Name: "door", Source: scene(t), Loop: true}}, io.Discard)
	defer stop()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base %s", base)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.CA)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp := postLogin(t, client, base, "correct horse", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login over HTTPS: %s", resp.Status)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly {
		t.Fatalf("session cookie %+v: want one, Secure and HttpOnly", cookies)
	}
	// Plain HTTP to the same port gets no page.
	plain := &http.Transport{}
	defer plain.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: plain, Timeout: 5 * time.Second}).Get("http://" + strings.TrimPrefix(base, "https://") + "/login"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain HTTP served the login page: %s", body)
		}
	}
}

// operatorClient logs in as the operator and returns an HTTP client with
// the session, and an offer function for a camera that carries the CSRF
// token from the camera page.
func operatorClient(t testing.TB, base, camera string) func(body []byte) *http.Response {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Jar: jar, Transport: tr}
	var page []byte
	resp := postLogin(t, client, base, "correct horse", &page)
	m := regexp.MustCompile(`<meta name="veil-csrf" content="([^"]+)">`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("login: %s, no CSRF token on the page", resp.Status)
	}
	return func(body []byte) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/cameras/"+camera+"/offer", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(web.CSRFHeader, string(m[1]))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
}

// postLogin posts the operator's login form with password pw; with body set
// it also reads the response (after redirects the client follows).
func postLogin(t testing.TB, client *http.Client, base, pw string, body *[]byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"user": {"operator"}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		*body, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	return resp
}
