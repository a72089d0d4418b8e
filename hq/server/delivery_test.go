package server

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// signedShop is a shop whose publisher signs its reports and keeps each
// window until head office's signed acknowledgement names it.
type signedShop struct {
	name, device string
	box          *egress.Outbox
	next         time.Time
	in, out      int64
}

func newSignedShop(t *testing.T, b *mqtttest.Broker, name string, boxKey ed25519.PrivateKey, hqKey ed25519.PublicKey, log *slog.Logger) *signedShop {
	t.Helper()
	s := &signedShop{name: name, device: name + "-box", next: time.Now().UTC().Truncate(time.Minute).Add(-24 * time.Hour)}
	s.box = runShopBox(t, name, s.device, egress.MQTTOptions{Broker: b.URL(),
		SignKey: boxKey, HeadOfficeKey: hqKey, StoredWait: 2 * time.Second, StoredWaitMax: 4 * time.Second}, log)
	return s
}

func (s *signedShop) count(t *testing.T, rng *rand.Rand, n int) {
	t.Helper()
	for range n {
		c := egress.Counts{Camera: "door", Line: "entrance", Start: s.next, End: s.next.Add(time.Minute), In: rng.IntN(20), Out: rng.IntN(20)}
		if _, err := s.box.Add(c); err != nil {
			t.Fatal(err)
		}
		s.in, s.out = s.in+int64(c.In), s.out+int64(c.Out)
		s.next = s.next.Add(time.Minute)
	}
}

// deliverySetup writes head office's key and a box registry with one box.
func deliverySetup(t *testing.T, store, device string) (hqKeyFile, registry string, boxKey ed25519.PrivateKey, hqPub ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	hqKeyFile = filepath.Join(dir, "relay.key")
	hq, err := consent.LoadKey(hqKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	boxKey, err = consent.LoadKey(filepath.Join(dir, "box.key"))
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(map[string]string{"device": device, "store": store,
		"key": base64.StdEncoding.EncodeToString(boxKey.Public().(ed25519.PublicKey))})
	registry = filepath.Join(dir, "boxes.jsonl")
	if err := os.WriteFile(registry, append(line, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return hqKeyFile, registry, boxKey, hq.Public().(ed25519.PublicKey)
}

// TestDeliveryEndToEnd: a window leaves a box only when head office has
// stored it, so the broker failures that used to lose counts after their
// PUBACK lose nothing: an ACL that denies the footfall topic for two
// minutes (MQTT 3.1.1 acknowledges the denied publish), mosquitto restarted
// while veil-hq's subscription is shared (mosquitto 2.0 does not restore
// shared subscriptions), and mosquitto killed with reports queued for
// veil-hq. Each time head office's totals end equal to what the shop
// counted, every window once, and the shop's outbox empty.
func TestDeliveryEndToEnd(t *testing.T) {
	const deny = "pattern read veil/v1/+/+/footfall\npattern readwrite veil/v1/+/+/status\npattern readwrite veil/v1/+/+/ack\npattern readwrite veil/v1/+/+/consent"
	const allow = "pattern readwrite #"
	for _, tc := range []struct {
		name    string
		acl     string
		group   string
		breakIt func(t *testing.T, b *mqtttest.Broker, shop *signedShop, rng *rand.Rand, restartHQ func())
	}{
		{"acl denies the footfall topic for 2 minutes", deny, "", func(t *testing.T, b *mqtttest.Broker, shop *signedShop, rng *rand.Rand, _ func()) {
			for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); {
				shop.count(t, rng, 1)
				time.Sleep(10 * time.Second)
			}
			b.SetACL(allow)
		}},
		{"broker restarted under a shared subscription", allow, "veil-hq", func(t *testing.T, b *mqtttest.Broker, shop *signedShop, rng *rand.Rand, _ func()) {
			b.Stop()
			b.Start()
			shop.count(t, rng, 10) // published before veil-hq subscribes again
		}},
		{"broker killed with reports queued", allow, "-", func(t *testing.T, b *mqtttest.Broker, shop *signedShop, rng *rand.Rand, restartHQ func()) {
			restartHQ() // stops veil-hq; reports queue for its session, boxes have their PUBACKs
			shop.count(t, rng, 10)
			time.Sleep(time.Second)
			b.Kill()
			b.Start()
			restartHQ() // starts it again
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := mqtttest.Start(t, mqtttest.Options{ACL: allow, MaxQueued: -1})
			var logs testenv.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("log:\n%s", logs.String())
				}
			})
			keyFile, registry, boxKey, hqPub := deliverySetup(t, "shop-d", "shop-d-box")
			db := filepath.Join(t.TempDir(), "hq.db")
			edit := func(c *config.Config) {
				c.HQ.SQLitePath, c.HQ.RelayKeyFile, c.HQ.Boxes = db, keyFile, registry
				if tc.group != "" {
					c.HQ.Group = tc.group
				}
			}
			srv, stopHQ := startHQStoppable(t, br, log, edit)
			restartHQ := func() {
				if stopHQ != nil {
					stopHQ()
					stopHQ = nil
					return
				}
				srv, stopHQ = startHQStoppable(t, br, log, edit)
			}
			shop := newSignedShop(t, br, "shop-d", boxKey, hqPub, log)
			rng := rand.New(rand.NewPCG(16, 2))
			shop.count(t, rng, 5)
			wait(t, waitLong, "the first windows stored", func() bool { return shop.box.Len() == 0 })
			if tc.acl != allow {
				br.SetACL(tc.acl)
			}
			tc.breakIt(t, br, shop, rng, restartHQ)
			shop.count(t, rng, 5)
			wait(t, 3*time.Minute, "every window acknowledged by head office", func() bool { return shop.box.Len() == 0 })
			in, out := totals(t, srv.Store(), "shop-d")
			if in != shop.in || out != shop.out {
				t.Errorf("head office holds in %d out %d, the shop counted in %d out %d", in, out, shop.in, shop.out)
			}
		})
	}
}

// startHQStoppable runs a veil-hq Server until stop is called (or the test
// ends).
func startHQStoppable(t *testing.T, b *mqtttest.Broker, log *slog.Logger, edit func(*config.Config)) (*Server, func()) {
	t.Helper()
	srv, _, stop := runHQ(t, b, log, edit)
	return srv, stop
}
