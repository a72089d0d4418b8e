package server

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/pgtest"
	"github.com/veil-edge/veil/testkit/testenv"
	"github.com/veil-edge/veil/web"
)

// The PostgreSQL runs share one server (pgtest.Start); Stop ends it.
func TestMain(m *testing.M) { testenv.Main(m, pgtest.Stop) }

const password = "head office pw"

// startHQ runs a veil-hq Server with SQLite on broker b until the test ends
// and returns it with its dashboard URL.
func startHQ(t *testing.T, b *mqtttest.Broker, log *slog.Logger) (*Server, string) {
	t.Helper()
	return startHQWith(t, b, log, func(*config.Config) {})
}

// startHQWith is startHQ with the config changed by edit.
func startHQWith(t *testing.T, b *mqtttest.Broker, log *slog.Logger, edit func(*config.Config)) (*Server, string) {
	t.Helper()
	db, key := filepath.Join(t.TempDir(), "hq.db"), filepath.Join(t.TempDir(), "relay.key")
	_, boxes := registerShops(t, "idle-shop")
	srv, base, _ := runHQ(t, b, log, func(c *config.Config) {
		c.HQ.SQLitePath, c.HQ.RelayKeyFile, c.HQ.Boxes = db, key, boxes
		edit(c)
	})
	return srv, base
}

// runHQ runs a veil-hq Server (config.Default on broker b with the
// dashboard's password, changed by edit) until stop is called or the test
// ends, and returns it with its dashboard URL.
func runHQ(t *testing.T, b *mqtttest.Broker, log *slog.Logger, edit func(*config.Config)) (srv *Server, base string, stop func()) {
	t.Helper()
	hash, err := web.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default
	cfg.MQTT.Broker = b.URL()
	cfg.HQ.PasswordHash = hash
	edit(&cfg)
	srv, err = New(context.Background(), Options{Config: cfg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	urls := make(chan string, 1)
	go func() { defer close(done); runErr = srv.Run(ctx, l, func(u string) { urls <- u }) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if runErr != nil {
				t.Errorf("Run: %v", runErr)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case base = <-urls:
	case <-done:
		t.Fatalf("veil-hq stopped at start: %v", runErr)
	}
	return srv, base, stop
}

// registerShops makes the box key of each shop's box (<shop>-box) in a
// key file, as veil run keeps it (consent.key_file), and writes head
// office's box registry of their public keys.
func registerShops(t *testing.T, shops ...string) (keys map[string]ed25519.PrivateKey, registry string) {
	t.Helper()
	dir := t.TempDir()
	keys = map[string]ed25519.PrivateKey{}
	var lines []byte
	for _, name := range shops {
		key, err := consent.LoadKey(filepath.Join(dir, name, "box.key"))
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = key
		line, err := json.Marshal(map[string]string{"device": name + "-box", "store": name,
			"key": base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(append(lines, line...), '\n')
	}
	registry = filepath.Join(dir, "boxes.jsonl")
	if err := os.WriteFile(registry, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	return keys, registry
}

// shop is a simulated store: veil's real outbox and publisher, fed by a
// generator of counting windows instead of cameras, connected to the broker
// through a proxy that can fail like a shop's network link.
type shop struct {
	name, device string
	box          *egress.Outbox
	link         *link
	next         time.Time
	in, out      int64 // sums of every window the shop counted
}

func newShop(t *testing.T, b *mqtttest.Broker, name string, key ed25519.PrivateKey, log *slog.Logger) *shop {
	t.Helper()
	s := &shop{name: name, device: name + "-box", next: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	s.link = newLink(t, b.URL())
	s.box = runShopBox(t, name, s.device, egress.MQTTOptions{Broker: s.link.URL(), SignKey: key}, log)
	return s
}

// runShopBox opens a shop box's outbox and runs veil's real publisher on
// it with o (short intervals added) until the test ends.
func runShopBox(t *testing.T, store, device string, o egress.MQTTOptions, log *slog.Logger) *egress.Outbox {
	t.Helper()
	box, err := egress.OpenOutbox(t.TempDir(), egress.OutboxOptions{Store: store, Device: device})
	if err != nil {
		t.Fatal(err)
	}
	o.ConnectTimeout, o.RetryInterval, o.AckTimeout = time.Second, 100*time.Millisecond, 2*time.Second
	p, err := egress.NewPublisher(o, box, log.With("shop", store))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; box.Close() })
	return box
}

// count closes n one-minute windows on two lines with random counts.
func (s *shop) count(t *testing.T, rng *rand.Rand, n int) {
	t.Helper()
	for range n {
		for _, line := range []string{"entrance", "back-door"} {
			c := egress.Counts{Camera: "door", Line: line, Start: s.next, End: s.next.Add(time.Minute), In: rng.IntN(20), Out: rng.IntN(20)}
			if _, err := s.box.Add(c); err != nil {
				t.Fatal(err)
			}
			s.in, s.out = s.in+int64(c.In), s.out+int64(c.Out)
		}
		s.next = s.next.Add(time.Minute)
	}
}

// TestHeadOffice is veil-hq end to end with a real mosquitto: three shops
// publish through veil's real publisher, signing with their box keys,
// which head office's registry holds; one shop's link fails so that its
// reports reach head office but their acknowledgements never come back,
// then is cut and restored, and the shop sends them all again. Head
// office's totals equal the sum of what the shops counted: nothing lost,
// nothing counted twice. The dashboard's JSON API says the same. It runs
// with each store: SQLite, and a real PostgreSQL server.
func TestHeadOffice(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, c *config.Config)
	}{
		{"sqlite", func(*testing.T, *config.Config) {}},
		{"postgres", func(t *testing.T, c *config.Config) { c.HQ.Store, c.HQ.PostgresDSN = "postgres", pgtest.Start(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) { headOffice(t, func(c *config.Config) { tc.edit(t, c) }) })
	}
}

func headOffice(t *testing.T, edit func(*config.Config)) {
	b := mqtttest.Start(t, mqtttest.Options{})
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	keys, registry := registerShops(t, "shop-a", "shop-b", "shop-c")
	srv, base := startHQWith(t, b, log, func(c *config.Config) { c.HQ.Boxes = registry; edit(c) })
	rng := rand.New(rand.NewPCG(1, 2))
	var shops []*shop
	for _, name := range []string{"shop-a", "shop-b", "shop-c"} {
		shops = append(shops, newShop(t, b, name, keys[name], log))
	}
	for _, s := range shops {
		s.count(t, rng, 30)
	}
	wait(t, waitLong, "the first 180 reports", func() bool { return reports(t, srv.Store()) == 180 })
	// Stored is not yet acknowledged: wait until every shop has its PUBACKs,
	// so the reports in flight when shop-b's link fails are new ones (else
	// acknowledgements still on their way take up the in-flight slots and
	// fewer new reports reach head office than the test counts on).
	for _, s := range shops {
		wait(t, waitLong, s.name+"'s outbox empty", func() bool { return s.box.Len() == 0 })
	}

	// shop-b's link loses every packet towards the shop: its reports reach
	// head office, their PUBACKs never reach the shop.
	outage := shops[1]
	outage.link.DropReplies(true)
	outage.count(t, rng, 20)
	for _, s := range []*shop{shops[0], shops[2]} {
		s.count(t, rng, 10)
	}
	// The publisher keeps up to 16 reports in flight; they are stored, and
	// sent again when their PUBACKs do not come, and recognised as repeats.
	wait(t, waitLong, "shop-b's in-flight reports stored and their re-sends dropped", func() bool {
		return reports(t, srv.Store()) >= 220+16 && srv.Ingest().Status().Duplicates >= 16
	})
	if n := outage.box.Len(); n != 40 {
		t.Fatalf("shop-b's outbox holds %d reports; want all 40 unacknowledged ones", n)
	}
	outage.link.Cut() // the shop notices: connection lost
	outage.count(t, rng, 5)
	outage.link.Restore()
	wait(t, waitLong, "shop-b's outbox empty after the replay", func() bool { return outage.box.Len() == 0 })
	wait(t, waitLong, "all 270 reports stored", func() bool { return reports(t, srv.Store()) == 270 })

	st := srv.Ingest().Status()
	if st.Duplicates < 16 {
		t.Errorf("ingest saw %d duplicates; want at least shop-b's 16 re-sent reports", st.Duplicates)
	}
	for _, s := range shops {
		in, out := totals(t, srv.Store(), s.name)
		if in != s.in || out != s.out {
			t.Errorf("%s: head office has in %d out %d; the shop counted in %d out %d", s.name, in, out, s.in, s.out)
		}
	}
	// The dashboard's JSON API, logged in, gives the same totals.
	c := login(t, base)
	var api struct {
		Totals []struct {
			Store   string `json:"store"`
			In, Out int64
		} `json:"totals"`
	}
	getJSON(t, c, base+"api/totals?period=custom&from=2026-11-23&to=2026-11-23&bucket=day", &api)
	got := map[string][2]int64{}
	for _, x := range api.Totals {
		v := got[x.Store]
		got[x.Store] = [2]int64{v[0] + x.In, v[1] + x.Out}
	}
	for _, s := range shops {
		if g := got[s.name]; g != [2]int64{s.in, s.out} {
			t.Errorf("%s: /api/totals gives in/out %v; the shop counted %d/%d", s.name, g, s.in, s.out)
		}
	}
	var health Health
	getJSON(t, c, base+"healthz", &health)
	if health.Status != "ok" || health.Devices != 3 || health.Online != 3 {
		t.Errorf("healthz %+v: want ok with 3 devices online", health)
	}
}

func reports(t *testing.T, st store.Store) int64 {
	t.Helper()
	ds, err := st.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, d := range ds {
		n += d.Reports
	}
	return n
}

func totals(t *testing.T, st store.Store, name string) (in, out int64) {
	t.Helper()
	ts, err := st.Totals(context.Background(), store.Query{Store: name, Bucket: store.Day})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		in, out = in+x.In, out+x.Out
	}
	return in, out
}

// waitLong bounds the waits for the shops' reports to reach head office: a
// condition, not a speed target, so it is generous for a CI box whose two
// cores other packages' tests are also using.
const waitLong = 60 * time.Second

func wait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// login logs in to the dashboard at base and returns a client with the
// session cookie.
func login(t *testing.T, base string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm(base+"login", url.Values{"user": {"admin"}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.HasSuffix(resp.Request.URL.Path, "/login") {
		t.Fatalf("login: %s at %s", resp.Status, resp.Request.URL)
	}
	return c
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %s: %v: %s", u, resp.Status, err, body)
	}
}

// link is a TCP proxy standing for a shop's network link to the broker. It
// can drop what flows back to the shop (the shop's publishes arrive, their
// acknowledgements do not) and be cut (every connection closed, new ones
// refused) and restored.
type link struct {
	t      *testing.T
	l      net.Listener
	target string

	mu    sync.Mutex
	drop  bool
	cut   bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func newLink(t *testing.T, broker string) *link {
	t.Helper()
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &link{t: t, l: l, target: u.Host}
	k.wg.Add(1)
	go k.accept()
	t.Cleanup(func() {
		l.Close()
		k.Cut()
		k.wg.Wait()
	})
	return k
}

func (k *link) URL() string { return "tcp://" + k.l.Addr().String() }

func (k *link) accept() {
	defer k.wg.Done()
	for {
		c, err := k.l.Accept()
		if err != nil {
			return
		}
		k.mu.Lock()
		if k.cut {
			k.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", k.target)
		if err != nil {
			k.mu.Unlock()
			c.Close()
			continue
		}
		k.conns = append(k.conns, c, up)
		k.wg.Add(2)
		k.mu.Unlock()
		go k.pipe(up, c, false) // shop → broker
		go k.pipe(c, up, true)  // broker → shop
	}
}

// pipe copies from src to dst; towards the shop it discards while drop is
// set.
func (k *link) pipe(dst, src net.Conn, toShop bool) {
	defer k.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			k.mu.Lock()
			drop := toShop && k.drop
			k.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				_ = fmt.Sprint(err) // a reset connection: the link is down either way
			}
			return
		}
	}
}

// DropReplies starts or stops discarding what the broker sends the shop.
func (k *link) DropReplies(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.drop = on
}

// Cut closes every connection and refuses new ones until Restore; it also
// ends dropping.
func (k *link) Cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cut, k.drop = true, false
	for _, c := range k.conns {
		c.Close()
	}
	k.conns = nil
}

// Restore accepts connections again.
func (k *link) Restore() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cut = false
}
