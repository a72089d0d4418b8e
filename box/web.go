package box

import (
	_ "embed"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veil-edge/veil/live"
	"github.com/veil-edge/veil/web"
)

// liveJS connects every <video id="video-NAME"> of the camera page to its
// camera's WebRTC stream.
//
//go:embed static/live.js
var liveJS []byte

// webHandler is what http.listen serves: with an operator password set, the
// login-protected camera page with live WebRTC video, plus /healthz and
// /metrics; without one, only /healthz and /metrics.
func (s *Service) webHandler() (http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{s: s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := s.o.Config.HTTP
	if cfg.PasswordHash == "" {
		mux := http.NewServeMux()
		mux.Handle("GET /healthz", s.Handler())
		mux.Handle("GET /metrics", promHandler(reg))
		if h := s.consentPages(nil); h != nil {
			mux.Handle("/signage/", h)
			mux.Handle("/c/", h)
		}
		return mux, nil
	}
	srv, err := web.New(web.Options{
		Users:        []web.User{{Name: cfg.User, PasswordHash: cfg.PasswordHash}},
		Secure:       cfg.TLSCert != "" || cfg.TrustedProxy != "",
		TrustedProxy: net.ParseIP(cfg.TrustedProxy),
		Log:          s.log,
		Cameras:      s.cameraStatus,
		Health:       s.Handler(),
		Metrics:      reg,
		Scripts:      []string{"/live.js"},
	})
	if err != nil {
		return nil, err
	}
	if h := s.consentPages(srv.ClientIP); h != nil {
		srv.HandlePublic("/signage/", h)
		srv.HandlePublic("/c/", h)
	}
	srv.Handle("GET /live.js", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(liveJS)
	}))
	srv.Handle("POST /api/cameras/{name}/offer", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub := s.hub(r.PathValue("name"))
		if hub == nil {
			http.Error(w, "no such camera", http.StatusNotFound)
			return
		}
		hub.ServeHTTP(w, r)
	}))
	return srv.Handler(), nil
}

func promHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func (s *Service) hub(name string) *live.Hub {
	for _, c := range s.cams {
		if c.cfg.Name == name {
			return c.hub
		}
	}
	return nil
}

func (s *Service) cameraStatus() []web.CameraStatus {
	h := s.Health()
	out := make([]web.CameraStatus, len(h.Cameras))
	for i, c := range h.Cameras {
		out[i] = web.CameraStatus{Name: c.Name, Healthy: c.Healthy, FPS: c.FPS, Viewers: c.Viewers, LastError: c.LastError}
	}
	return out
}
