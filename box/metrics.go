package box

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-edge/veil/consent"
)

// collector exposes Health as Prometheus metrics at scrape time.
type collector struct{ s *Service }

var (
	mFPS     = prometheus.NewDesc("veil_camera_fps", "Redacted frames per second out of the camera's pipeline.", []string{"camera"}, nil)
	mFrames  = prometheus.NewDesc("veil_camera_frames_total", "Redacted frames out of the camera's pipeline.", []string{"camera"}, nil)
	mWhole   = prometheus.NewDesc("veil_camera_frames_redacted_whole_total", "Frames redacted whole because their faces were not known (fail-closed).", []string{"camera"}, nil)
	mHealthy = prometheus.NewDesc("veil_camera_healthy", "1 while the camera delivers frames.", []string{"camera"}, nil)
	mRestart = prometheus.NewDesc("veil_camera_restarts_total", "Times the camera's source was reopened after a failure.", []string{"camera"}, nil)
	mViewers = prometheus.NewDesc("veil_camera_viewers", "Live-view viewers of the camera.", []string{"camera"}, nil)
	mFPSIn   = prometheus.NewDesc("veil_camera_fps_in", "Frames per second received from the camera.", []string{"camera"}, nil)
	mIn      = prometheus.NewDesc("veil_camera_frames_in_total", "Frames received from the camera.", []string{"camera"}, nil)
	mDropped = prometheus.NewDesc("veil_camera_frames_dropped_total", "Frames received from the camera but never processed, because a newer one arrived while veil was busy.", []string{"camera"}, nil)
	mDetect  = prometheus.NewDesc("veil_camera_detect_seconds", "Face search time per keyframe.", []string{"camera"}, nil)
	mRedact  = prometheus.NewDesc("veil_camera_redact_seconds", "Redaction time per frame.", []string{"camera"}, nil)
	mPending = prometheus.NewDesc("veil_outbox_pending", "Count windows waiting in the outbox for head office.", nil, nil)
	mOldest  = prometheus.NewDesc("veil_outbox_oldest_pending_seconds", "How long ago the oldest window still in the outbox ended (0 when empty): how far head office's acknowledgements are behind.", nil, nil)
	mAwait   = prometheus.NewDesc("veil_mqtt_awaiting_stored", "Reports the broker has acknowledged that head office has not yet acknowledged storing.", nil, nil)
	mRefused = prometheus.NewDesc("veil_mqtt_reports_refused_total", "Reports head office refused for good (dropped from the outbox; see the log for why).", nil, nil)
	mBadAck  = prometheus.NewDesc("veil_mqtt_bad_acks_total", "Messages on the acknowledgement topic that were not a valid acknowledgement for this box (ignored).", nil, nil)
	mMQTT    = prometheus.NewDesc("veil_mqtt_connected", "1 while connected to head office's MQTT broker.", nil, nil)
	mRelayOK = prometheus.NewDesc("veil_consent_downlink_accepted_total", "Consent down-link messages from head office's relay accepted, by kind.", []string{"kind"}, nil)
	mRelayNo = prometheus.NewDesc("veil_consent_downlink_refused_total", "Consent down-link messages refused, by reason (malformed, signature, other_box, stale, future, replay, token, consent, error).", []string{"reason"}, nil)
	mPasses  = prometheus.NewDesc("veil_detect_passes_total", "Network passes the box's detection service ran (fine regions and coarse copies of every camera's keyframes).", nil, nil)
	mLate    = prometheus.NewDesc("veil_detect_passes_late_total", "Passes answered late without running because their deadline had passed (their keyframes are redacted whole).", nil, nil)
	mNets    = prometheus.NewDesc("veil_detect_networks_built_total", "Networks the detection service built, one per input size it met (kept in a small cache per worker).", nil, nil)
	mPeople  = prometheus.NewDesc("veil_detect_people_passes_total", "Person detector passes the detection service ran (counting, redact.target heads and bodies).", nil, nil)
	mPLate   = prometheus.NewDesc("veil_detect_people_passes_late_total", "Person detector passes answered late without running (the people tracker coasted over those frames).", nil, nil)
	mCountFB = prometheus.NewDesc("veil_camera_counting_fallback", "1 while a camera counts moving blobs because the person model is missing or broken (footfall.detector people).", []string{"camera"}, nil)
	mRelayUp = prometheus.NewDesc("veil_consent_downlink_connected", "1 while the consent down-link's subscriber is connected.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mFPS, mFrames, mWhole, mHealthy, mRestart, mViewers, mFPSIn, mIn, mDropped, mDetect, mRedact, mPending, mOldest, mAwait, mRefused, mBadAck, mMQTT, mRelayOK, mRelayNo, mRelayUp, mPasses, mLate, mNets, mPeople, mPLate, mCountFB} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	h := c.s.Health()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, cam := range h.Cameras {
		ch <- prometheus.MustNewConstMetric(mFPS, prometheus.GaugeValue, cam.FPS, cam.Name)
		ch <- prometheus.MustNewConstMetric(mFrames, prometheus.CounterValue, float64(cam.Frames), cam.Name)
		ch <- prometheus.MustNewConstMetric(mWhole, prometheus.CounterValue, float64(cam.Whole), cam.Name)
		ch <- prometheus.MustNewConstMetric(mHealthy, prometheus.GaugeValue, b(cam.Healthy), cam.Name)
		ch <- prometheus.MustNewConstMetric(mRestart, prometheus.CounterValue, float64(cam.Restarts), cam.Name)
		ch <- prometheus.MustNewConstMetric(mViewers, prometheus.GaugeValue, float64(cam.Viewers), cam.Name)
		ch <- prometheus.MustNewConstMetric(mFPSIn, prometheus.GaugeValue, cam.FPSIn, cam.Name)
		ch <- prometheus.MustNewConstMetric(mIn, prometheus.CounterValue, float64(cam.FramesIn), cam.Name)
		ch <- prometheus.MustNewConstMetric(mDropped, prometheus.CounterValue, float64(cam.Dropped), cam.Name)
		ch <- prometheus.MustNewConstSummary(mDetect, uint64(cam.detect.n), cam.detect.sum.Seconds(), nil, cam.Name)
		ch <- prometheus.MustNewConstSummary(mRedact, uint64(cam.redact.n), cam.redact.sum.Seconds(), nil, cam.Name)
	}
	ch <- prometheus.MustNewConstMetric(mPending, prometheus.GaugeValue, float64(h.Outbox.Pending))
	ch <- prometheus.MustNewConstMetric(mOldest, prometheus.GaugeValue, h.Outbox.OldestAge)
	if h.MQTT != nil {
		ch <- prometheus.MustNewConstMetric(mMQTT, prometheus.GaugeValue, b(h.MQTT.Connected))
		ch <- prometheus.MustNewConstMetric(mAwait, prometheus.GaugeValue, float64(h.MQTT.AwaitingStored))
		ch <- prometheus.MustNewConstMetric(mRefused, prometheus.CounterValue, float64(h.MQTT.Refused))
		ch <- prometheus.MustNewConstMetric(mBadAck, prometheus.CounterValue, float64(h.MQTT.BadAcks))
	}
	if d := c.s.detect; d != nil {
		st := d.Stats()
		ch <- prometheus.MustNewConstMetric(mPasses, prometheus.CounterValue, float64(st.Ran))
		ch <- prometheus.MustNewConstMetric(mLate, prometheus.CounterValue, float64(st.Late))
		ch <- prometheus.MustNewConstMetric(mNets, prometheus.CounterValue, float64(st.Built))
		ch <- prometheus.MustNewConstMetric(mPeople, prometheus.CounterValue, float64(st.PeopleRan))
		ch <- prometheus.MustNewConstMetric(mPLate, prometheus.CounterValue, float64(st.PeopleLate))
	}
	for _, cam := range h.Cameras {
		if cam.Counting == "" {
			continue
		}
		fb := 0.0
		if cam.CountingFallback != "" {
			fb = 1
		}
		ch <- prometheus.MustNewConstMetric(mCountFB, prometheus.GaugeValue, fb, cam.Name)
	}
	if rx := c.s.relay; rx != nil {
		st := rx.Stats()
		for _, k := range []string{consent.KindGrant, consent.KindWithdraw} {
			ch <- prometheus.MustNewConstMetric(mRelayOK, prometheus.CounterValue, float64(st.Accepted[k]), k)
		}
		for _, r := range []string{consent.RefusedMalformed, consent.RefusedSignature, consent.RefusedOtherBox, consent.RefusedStale,
			consent.RefusedFuture, consent.RefusedReplay, consent.RefusedToken, consent.RefusedConsent, consent.RefusedFailed} {
			ch <- prometheus.MustNewConstMetric(mRelayNo, prometheus.CounterValue, float64(st.Refused[r]), r)
		}
		ch <- prometheus.MustNewConstMetric(mRelayUp, prometheus.GaugeValue, b(c.s.relayIn.Connected()))
	}
}
