package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
)

// Run connects to the broker, subscribes and stores what arrives until ctx
// is cancelled; then it disconnects and returns nil. Messages not yet
// stored are not acknowledged, so the broker delivers them again to the
// next session.
func (in *Ingest) Run(ctx context.Context) error {
	if !in.ran.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	in.log.Info("hq ingest: connecting to broker", "broker", in.broker, "client_id", in.o.MQTT.ClientID)
	c := mqtt.NewClient(in.clientOpts)
	in.client = c
	c.Connect() // with ConnectRetry it keeps trying; OnConnect subscribes
	defer func() {
		close(in.done) // releases handlers blocked on a full queue
		c.Disconnect(250)
		in.setConnected(false)
	}()
	batch := make([]mqtt.Message, 0, in.o.Batch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-in.msgs:
			batch = append(batch[:0], m)
		}
	fill:
		for len(batch) < in.o.Batch {
			select {
			case m := <-in.msgs:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if !in.process(ctx, batch) {
			return nil
		}
	}
}

// kind of a message, from its topic.
const (
	kindFootfall = "footfall"
	kindStatus   = "status"
)

// topicParts splits <prefix>/<store>/<device>/<kind>.
func (in *Ingest) topicParts(topic string) (st, device, kind string, ok bool) {
	rest, ok := strings.CutPrefix(topic, in.o.MQTT.TopicPrefix+"/")
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// process stores one batch, publishes its Acks to the boxes and
// acknowledges its messages to the broker. It returns false if ctx ended
// first (nothing of the batch left unstored is acknowledged).
func (in *Ingest) process(ctx context.Context, batch []mqtt.Message) bool {
	var (
		reports []egress.Report
		msgs    []mqtt.Message // msgs[i] brought reports[i]
		later   []mqtt.Message // refused for good, acknowledged with the batch
		ans     = answers{}
	)
	now := in.o.Now()
	for _, m := range batch {
		st, device, kind, ok := in.topicParts(m.Topic())
		switch {
		case ok && kind == kindStatus:
			if !in.status(ctx, m, st, device) {
				return false
			}
		case ok && kind == kindFootfall:
			in.m.received.Inc()
			r, err := egress.ParseReport(m.Payload())
			if err != nil {
				in.refuse(m, reasonMalformed, err)
				continue
			}
			r, reason, err := in.admit(r, st, device)
			if err != nil {
				in.refuse(m, reason, err) // not from the box it names: no answer
				continue
			}
			if reason, err := in.implausible(r, now); reason == reasonFuture {
				in.refuse(m, reason, err) // no answer: the box sends it again
				continue
			} else if err != nil {
				in.note(m, reason, err)
				ans.refused(r, reason)
				later = append(later, m)
				continue
			}
			reports = append(reports, r)
			msgs = append(msgs, m)
		default:
			in.refuse(m, reasonTopic, errors.New("not a footfall or status topic"))
		}
	}
	var outcomes []store.Outcome
	if len(reports) > 0 {
		if !in.retry(ctx, "storing reports", func() error {
			start := time.Now()
			var err error
			outcomes, err = in.o.Store.Add(ctx, reports...)
			in.m.storeSeconds.Observe(time.Since(start).Seconds())
			if err == nil && len(outcomes) != len(reports) {
				err = fmt.Errorf("store gave %d outcomes for %d reports", len(outcomes), len(reports))
			}
			return err
		}) {
			return false
		}
	}
	for i, r := range reports {
		if outcomes[i] == store.Conflict {
			in.note(msgs[i], reasonConflict, fmt.Errorf("device %q boot %d seq %d: head office holds a different report under this identity", r.Device, r.Boot, r.Seq))
			ans.refused(r, reasonConflict)
			continue
		}
		ans.stored(r)
	}
	if len(reports) > 0 {
		added, repeats := store.Count(outcomes, store.Added), store.Count(outcomes, store.Repeat)
		in.m.batch.Observe(float64(len(reports)))
		in.m.stored.Add(float64(added))
		in.m.duplicates.Add(float64(repeats))
		in.mu.Lock()
		in.st.Received += int64(len(reports))
		in.st.Stored += int64(added)
		in.st.Duplicates += int64(repeats)
		in.st.LastReport = in.o.Now()
		in.mu.Unlock()
	}
	if len(ans) > 0 && !in.publishAcks(ctx, ans.acks(in.o.Now())) {
		return false
	}
	for _, m := range append(msgs, later...) {
		m.Ack()
	}
	return true
}

// status records the status message of a registered (or allowed unsigned)
// device and acknowledges it.
func (in *Ingest) status(ctx context.Context, m mqtt.Message, st, device string) bool {
	var online bool
	switch string(m.Payload()) {
	case egress.StatusOnline:
		online = true
	case egress.StatusOffline:
	case "": // a cleared retained status
		m.Ack()
		return true
	default:
		in.refuse(m, reasonStatus, fmt.Errorf("status %.32q; allowed %q or %q", m.Payload(), egress.StatusOnline, egress.StatusOffline))
		return true
	}
	// Statuses are not signed; only known devices get a row for theirs.
	if box, ok := in.boxes[device]; ok && box.Store != st {
		in.refuse(m, reasonWrongStore, fmt.Errorf("status of device %q, registered in store %q, on the topic of store %q", device, box.Store, st))
		return true
	} else if !ok && !in.unsigned[st+"/"+device] {
		in.refuse(m, reasonUnknown, fmt.Errorf("status of device %q of store %q, which is not in the box registry (hq.boxes)", device, st))
		return true
	}
	at := in.o.Now()
	if !in.retry(ctx, "storing a status", func() error { return in.o.Store.SetStatus(ctx, st, device, online, at) }) {
		return false
	}
	in.m.statuses.Inc()
	m.Ack()
	return true
}

// retry runs op until it succeeds, with doubling pauses up to retryMax. It
// returns false if ctx ends first.
func (in *Ingest) retry(ctx context.Context, what string, op func() error) bool {
	pause := 100 * time.Millisecond
	for {
		err := op()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, egress.ErrInvalid) {
			// Cannot happen: every report was parsed, which validates it.
			// Retrying would not help; say so loudly and keep going.
			in.log.Error("hq ingest: store refused a parsed report", "err", err)
		}
		in.m.storeErrors.Inc()
		in.setError(fmt.Errorf("%s: %w", what, err))
		in.log.Warn("hq ingest: "+what+" failed; retrying, nothing acknowledged", "retry_in", pause, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, retryMax)
	}
}

// refuse acknowledges a message that will never be stored, counting it and
// logging it at most once a minute per topic.
func (in *Ingest) refuse(m mqtt.Message, reason string, err error) {
	m.Ack()
	in.note(m, reason, err)
}

// note counts and logs (at most once a minute per topic) a message refused
// for reason.
func (in *Ingest) note(m mqtt.Message, reason string, err error) {
	in.m.refused.WithLabelValues(reason).Inc()
	now := in.o.Now()
	in.mu.Lock()
	in.st.Refused++
	last, seen := in.refusedLogged[m.Topic()]
	log := !seen || now.Sub(last) >= refuseLogEvery
	if log {
		if len(in.refusedLogged) > 10000 {
			clear(in.refusedLogged)
		}
		in.refusedLogged[m.Topic()] = now
	}
	in.mu.Unlock()
	if log {
		in.log.Warn("hq ingest: message refused (further ones on this topic are not logged for a minute)",
			"topic", m.Topic(), "reason", reason, "err", err)
	}
}

func (in *Ingest) setError(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.st.LastError, in.st.LastErrorAt = err.Error(), in.o.Now()
}

func (in *Ingest) setConnected(up bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.st.Connected = up
	if up {
		in.m.connected.Set(1)
	} else {
		in.m.connected.Set(0)
	}
}
