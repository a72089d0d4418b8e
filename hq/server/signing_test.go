package server

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestUnsignedDevices: veil-hq with a registered box and, during a
// migration, a box named in hq.unsigned_devices, both running veil's real
// publisher. The registered box's signed reports are stored; when it
// sends unsigned ones they are refused and counted in /metrics; the
// allowed box's unsigned reports are stored and /api/devices marks them.
func TestUnsignedDevices(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	keys, registry := registerShops(t, "shop-a")
	srv, base := startHQWith(t, b, log, func(c *config.Config) {
		c.HQ.Boxes, c.HQ.UnsignedDevices = registry, "shop-old/shop-old-box"
	})
	for _, tc := range []struct {
		shop string
		sign bool
	}{
		{"shop-a", true},
		{"shop-a", false}, // a second box claiming to be shop-a-box: its reports are refused
		{"shop-old", false},
	} {
		s := &shop{name: tc.shop, device: tc.shop + "-box", next: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
		o := egress.MQTTOptions{Broker: b.URL(), ClientID: "veil-" + s.device + map[bool]string{false: "-unsigned"}[tc.sign]}
		if tc.sign {
			o.SignKey = keys[tc.shop]
		}
		s.box = runShopBox(t, s.name, s.device, o, log.With("signed", tc.sign))
		if !tc.sign {
			s.next = s.next.Add(time.Hour) // other windows than the signed box's
		}
		s.count(t, rand.New(rand.NewPCG(3, 4)), 3)
		wait(t, waitLong, s.name+"'s reports published", func() bool { return s.box.Len() == 0 })
	}
	wait(t, waitLong, "18 reports stored or refused", func() bool {
		st := srv.Ingest().Status()
		return st.Stored+st.Refused == 18
	})

	c := login(t, base)
	var devices []struct {
		Store, Device     string
		Reports, Unsigned int64
	}
	getJSON(t, c, base+"api/devices", &devices)
	want := map[string][2]int64{"shop-a-box": {6, 0}, "shop-old-box": {6, 6}} // reports, unsigned (two lines per minute)
	if len(devices) != len(want) {
		t.Errorf("devices %+v, want %v", devices, want)
	}
	for _, d := range devices {
		if got := [2]int64{d.Reports, d.Unsigned}; got != want[d.Device] {
			t.Errorf("%s/%s: %d reports, %d unsigned; want %v", d.Store, d.Device, d.Reports, d.Unsigned, want[d.Device])
		}
	}
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `veil_hq_messages_refused_total{reason="unsigned"} 6`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}
