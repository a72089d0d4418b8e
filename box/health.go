package box

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/veil-edge/veil/egress"
)

// Health is what /healthz reports.
type Health struct {
	Status  string         `json:"status"` // ok | degraded
	Uptime  string         `json:"uptime"`
	Boot    uint64         `json:"boot"`
	Cameras []CameraHealth `json:"cameras"`
	Outbox  struct {
		Pending int `json:"pending"`
		// OldestAge is how long ago the oldest window still in the outbox
		// ended, in seconds: how far head office is behind; 0 when empty.
		OldestAge float64 `json:"oldest_age_seconds"`
	} `json:"outbox"`
	MQTT   *egress.Status `json:"mqtt,omitempty"`
	Update *UpdateHealth  `json:"update,omitempty"`
	// Detect is the box's detection service, shared by every camera.
	Detect *DetectHealth `json:"detect,omitempty"`
}

// DetectHealth is the detection service's work since start.
type DetectHealth struct {
	Networks      int   `json:"networks"`       // passes run at once (detect.threads)
	Passes        int64 `json:"passes"`         // network passes run
	LatePasses    int64 `json:"late_passes"`    // answered late without running (their keyframes redacted whole)
	NetworksBuilt int64 `json:"networks_built"` // one per input size met, kept in a small cache
	// PeoplePasses and PeopleLatePasses are the person detector's passes
	// (counting, redact.target heads and bodies) run and answered late.
	PeoplePasses     int64 `json:"people_passes"`
	PeopleLatePasses int64 `json:"people_late_passes"`
}

// CameraHealth is one camera's state.
type CameraHealth struct {
	Name     string  `json:"name"`
	Healthy  bool    `json:"healthy"`
	FPS      float64 `json:"fps"`    // redacted frames out per second
	FPSIn    float64 `json:"fps_in"` // frames from the camera per second
	Frames   int64   `json:"frames"`
	FramesIn int64   `json:"frames_in"`
	Dropped  int64   `json:"frames_dropped"` // from the camera but never processed: veil was busy
	DetectMS float64 `json:"detect_ms"`      // face search per keyframe, recent average
	RedactMS float64 `json:"redact_ms"`      // redaction per frame, recent average
	detect   timing
	redact   timing
	Whole    int64 `json:"frames_redacted_whole"`
	// WholeLastMinute is the share of the last full minute's frames
	// redacted whole; above 5 % the camera also logs a warning.
	WholeLastMinute float64 `json:"whole_share_last_minute"`
	Restarts        int     `json:"restarts"`
	Viewers         int     `json:"viewers"`
	LastError       string  `json:"last_error,omitempty"`
	Lines           []Line  `json:"lines,omitempty"`
	// Counting is what the camera counts with: people (the person
	// detector) or motion (moving blobs); empty when it has no lines.
	Counting string `json:"counting,omitempty"`
	// CountingFallback says why the camera counts moving blobs although
	// footfall.detector asks for people (the person model is missing or
	// broken); the camera is then reported degraded.
	CountingFallback string `json:"counting_fallback,omitempty"`
	// PeopleLate is person passes answered late since start: the tracker
	// coasted over those frames.
	PeopleLate int64 `json:"people_late,omitempty"`
}

// Line is a counting line's totals since start.
type Line struct {
	Name string `json:"name"`
	In   int    `json:"in"`
	Out  int    `json:"out"`
}

// Health reports every camera, the outbox and the MQTT link.
func (s *Service) Health() Health {
	h := Health{Status: "ok", Uptime: time.Since(s.started).Round(time.Second).String(), Boot: s.box.Boot()}
	for _, c := range s.cams {
		c.mu.Lock()
		ch := CameraHealth{Name: c.cfg.Name, Healthy: c.healthy, FPS: c.fps, FPSIn: c.inRate, Frames: c.frames, Whole: c.whole, Restarts: c.restarts, LastError: c.lastErr,
			DetectMS: c.detect.avgMS, RedactMS: c.redact.avgMS, detect: c.detect, redact: c.redact, WholeLastMinute: c.minute.lastShare}
		ch.FramesIn, ch.Dropped = c.framesIn()
		if c.hub != nil {
			ch.Viewers = c.hub.Viewers()
		}
		if time.Since(c.lastOut) > 5*time.Second {
			ch.Healthy = false
		}
		if !ch.Healthy {
			ch.FPS, ch.FPSIn = 0, 0
		}
		for i, l := range c.lines {
			ch.Lines = append(ch.Lines, Line{Name: l.Name, In: c.totals[i].In, Out: c.totals[i].Out})
		}
		ch.Counting, ch.CountingFallback, ch.PeopleLate = c.countKind.Detector, c.countKind.Fallback, c.peopleLate
		c.mu.Unlock()
		if !ch.Healthy || ch.CountingFallback != "" {
			h.Status = "degraded"
		}
		h.Cameras = append(h.Cameras, ch)
	}
	if s.detect != nil {
		st := s.detect.Stats()
		h.Detect = &DetectHealth{Networks: s.detect.Workers(), Passes: st.Ran, LatePasses: st.Late, NetworksBuilt: st.Built,
			PeoplePasses: st.PeopleRan, PeopleLatePasses: st.PeopleLate}
	}
	h.Outbox.Pending = s.box.Len()
	if t := s.box.OldestEnd(); !t.IsZero() {
		h.Outbox.OldestAge = max(0, time.Since(t).Seconds())
	}
	if s.upd != nil {
		h.Update = s.upd.health()
	}
	if s.pub != nil {
		st := s.pub.Status()
		h.MQTT = &st
		if !st.Connected {
			h.Status = "degraded"
		}
	}
	return h
}

// Handler serves /healthz: 200 when every camera delivers frames and the
// MQTT link is up, 503 otherwise, with the details as JSON either way.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := s.Health()
		w.Header().Set("Content-Type", "application/json")
		if h.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
	return mux
}
