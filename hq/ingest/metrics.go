package ingest

import "github.com/prometheus/client_golang/prometheus"

// metrics are the ingest's Prometheus series.
type metrics struct {
	received, stored, duplicates, statuses, storeErrors prometheus.Counter
	acks, ackErrors                                     prometheus.Counter
	refused                                             *prometheus.CounterVec
	batch, storeSeconds                                 prometheus.Histogram
	connected                                           prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) metrics {
	m := metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_hq_reports_received_total",
			Help: "Footfall report messages received, duplicates included."}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_hq_reports_stored_total",
			Help: "New footfall reports stored."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_hq_reports_duplicate_total",
			Help: "Footfall reports received again with the same content (at-least-once delivery) and dropped."}),
		statuses: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_hq_status_messages_total",
			Help: "Device status messages stored."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_hq_store_errors_total",
			Help: "Failed attempts to store a batch or a status (retried)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "veil_hq_messages_refused_total",
			Help: "Messages refused and not stored, by reason: malformed, topic, replayed, unknown-device, wrong-store, unsigned, bad-signature, implausible, conflict, status."}, []string{"reason"}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_hq_acks_published_total",
			Help: "Signed acknowledgements published to boxes and acknowledged by the broker."}),
		ackErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_hq_ack_errors_total",
			Help: "Acknowledgements to boxes that could not be published (the box sends its reports again)."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "veil_hq_batch_reports",
			Help: "Reports per stored batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "veil_hq_store_seconds",
			Help: "Time to store one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "veil_hq_mqtt_connected",
			Help: "1 while subscribed to the broker."}),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.stored, m.duplicates, m.statuses, m.storeErrors, m.refused, m.acks, m.ackErrors,
			m.batch, m.storeSeconds, m.connected)
	}
	for _, r := range reasons {
		m.refused.WithLabelValues(r)
	}
	return m
}
