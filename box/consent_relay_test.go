package box_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/relay"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestConsentRelayEndToEnd: the sign's QR code points at head office; the
// shopper's phone (a plain HTTP client) opts in on head office's pages
// (hq/relay); the grant reaches the box over a real mosquitto; the box
// binds it to the face on the spot, which the live view then shows
// unredacted while the other face stays redacted; withdrawing at head
// office redacts it again. Then a forged grant (signed by another key)
// and a replay of the captured real grant, published straight to the
// down-link topic, are refused by the box (log, metrics, ledger) and the
// face stays redacted. The box publishes nothing but counts and status.
func TestConsentRelayEndToEnd(t *testing.T) {
	bin := chromiumPath(t)
	cfg := testConfig(t)
	if _, err := models.Verify(cfg.Models.Dir); err != nil {
		testenv.Missing(t, fmt.Sprintf("face models: %v (run scripts/setup.sh)", err))
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	rec := mqtttest.Record(t, b)
	video, src, inZone, other, zone := consentScene(t)
	defer src.Close()

	// The box's consent key, registered at head office; head office's
	// relay key, installed on the box.
	dir := t.TempDir()
	cfg.Consent.Ledger = filepath.Join(dir, "consent", "ledger.jsonl")
	cfg.Consent.KeyFile = filepath.Join(dir, "consent", "box.key")
	boxKey, err := consent.LoadKey(cfg.Consent.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var hqLogs testenv.Buffer
	hq, err := relay.New(relay.Options{KeyFile: filepath.Join(dir, "hq", "relay.key"), Ledger: filepath.Join(dir, "hq", "consent.jsonl"),
		Boxes: []relay.Box{{Device: cfg.Site.Device, Store: cfg.Site.Store, Key: boxKey.Public().(ed25519.PublicKey)}},
		MQTT:  egress.MQTTOptions{Broker: b.URL(), ClientID: "veil-hq-relay", RetryInterval: 200 * time.Millisecond, AckTimeout: 5 * time.Second},
		Log:   slog.New(slog.NewTextHandler(&hqLogs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer hq.Close()
	hqSrv := httptest.NewServer(hq.Handler())
	defer hqSrv.Close()
	cfg.Consent.RelayKey = base64.StdEncoding.EncodeToString(hq.PublicKey())
	cfg.Consent.PublicURL = hqSrv.URL + "/"
	cfg.MQTT.Broker = b.URL()

	cam := config.Camera{Name: "sign", Source: video, Loop: true, OptinZone: []int{zone.Min.X, zone.Min.Y, zone.Max.X, zone.Max.Y}}
	var logs testenv.Buffer
	_, base, stop := startLiveService(t, cfg, []config.Camera{cam}, &logs)
	defer stop()
	defer func() {
		if t.Failed() {
			t.Logf("veil's log:\n%s\nhead office's log:\n%s", logs.String(), hqLogs.String())
		}
	}()
	_, faces := watchSign(t, bin, base, 90*time.Second, src, inZone, other)
	redacted := func(a float64) bool { return a <= leak.DefaultThreshold }
	waitMetric := func(series string, atLeast float64) { t.Helper(); waitMetricAt(t, base, series, atLeast) }
	waitMetric("veil_consent_downlink_connected", 1)

	// The sign's QR code points at head office.
	scan := func() string {
		t.Helper()
		u := signQR(t, base)
		if !strings.HasPrefix(u, hqSrv.URL+"/c/v1.") {
			t.Fatalf("QR code reads %q, want head office's %s/c/v1. URL", u, hqSrv.URL)
		}
		return strings.TrimPrefix(u, hqSrv.URL)
	}

	// The phone, on mobile data: head office's pages only.
	jar, _ := cookiejar.New(nil)
	phone := &http.Client{Jar: jar}
	csrfField := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	var csrf string
	do := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			form.Set("csrf", csrf)
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, hqSrv.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := phone.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if m := csrfField.FindSubmatch(data); m != nil {
			csrf = string(m[1])
		}
		return resp.StatusCode, string(data)
	}
	path := scan()
	if code, body := do(http.MethodGet, path, nil); code != 200 || !strings.Contains(body, consent.DefaultNotice().Texts["en"].Title) {
		t.Fatalf("head office's notice page: %d\n%s", code, body)
	}
	if code, body := do(http.MethodPost, path, url.Values{"choice": {"yes"}, "agree": {"on"}, "lang": {"en"}}); code != 200 || !strings.Contains(body, `id="withdraw"`) {
		t.Fatalf("yes at head office: %d\n%s", code, body)
	}
	waitMetric(`veil_consent_downlink_accepted_total{kind="grant"}`, 1)
	faces("opted in at head office: the face on the spot shown", func(a float64) bool { return a >= 0.6 })

	// Withdraw at head office: redacted again.
	if code, body := do(http.MethodPost, "/c/consent/withdraw", url.Values{"lang": {"en"}}); code != 200 || !strings.Contains(body, consent.DefaultNotice().Texts["en"].Withdrawn) {
		t.Fatalf("withdraw at head office: %d\n%s", code, body)
	}
	waitMetric(`veil_consent_downlink_accepted_total{kind="withdraw"}`, 1)
	faces("withdrawn at head office", redacted)

	// The real grant as it went over the broker, and a forged one.
	topic := consent.DownlinkTopic(egress.DefaultTopicPrefix, cfg.Site.Store, cfg.Site.Device)
	var captured []byte
	for _, m := range rec.Wait(10*time.Second, "the relayed grant", func(ms []mqtttest.Message) bool {
		for _, m := range ms {
			if m.Topic == topic && strings.Contains(m.Payload, `"kind":"grant"`) {
				return true
			}
		}
		return false
	}) {
		if m.Topic == topic && strings.Contains(m.Payload, `"kind":"grant"`) {
			captured = []byte(m.Payload)
		}
	}
	tok := strings.TrimPrefix(scan(), "/c/")
	forged, err := consent.Downlink{V: 1, ID: consent.NewNonce(), Kind: consent.KindGrant, Box: cfg.Site.Device, ConsentID: consent.NewNonce(),
		Token: tok, Lang: "en", Issued: time.Now().Unix()}.Sign(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	raw := mqtt.NewClient(b.ClientOptions("attacker"))
	if ct := raw.Connect(); !ct.WaitTimeout(5*time.Second) || ct.Error() != nil {
		t.Fatalf("raw client: %v", ct.Error())
	}
	defer raw.Disconnect(100)
	for _, msg := range [][]byte{forged, captured} {
		if pt := raw.Publish(topic, 1, false, msg); !pt.WaitTimeout(5*time.Second) || pt.Error() != nil {
			t.Fatalf("publishing: %v", pt.Error())
		}
	}
	waitMetric(`veil_consent_downlink_refused_total{reason="signature"}`, 1)
	waitMetric(`veil_consent_downlink_refused_total{reason="replay"}`, 1)
	for _, want := range []string{`msg="consent down-link refused" reason=signature`, `msg="consent down-link refused" reason=replay`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("veil's log lacks %s", want)
		}
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("veil's log holds a token's text")
	}
	for range 3 {
		if a := faces("after the forged and the replayed grant", func(float64) bool { return true }); a > leak.DefaultThreshold {
			t.Errorf("the face on the spot is shown after a forged or replayed grant (corr %.3f)", a)
		}
	}

	// The box's ledger: one relayed grant, bound, withdrawn; nothing from
	// the forged or replayed message.
	if _, err := consent.VerifyLedger(cfg.Consent.Ledger); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg.Consent.Ledger)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e consent.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, string(e.Type))
		if e.Type == consent.EventGrant && !e.Relayed {
			t.Errorf("grant not marked relayed: %s", line)
		}
	}
	if strings.Join(got, ",") != "grant,bind,unbind,withdraw" {
		t.Fatalf("box ledger %v, want grant, bind, unbind, withdraw", got)
	}
	// Head office's copy.
	if n, err := consent.VerifyLedger(filepath.Join(dir, "hq", "consent.jsonl")); err != nil || n != 2 {
		t.Fatalf("head office's ledger: %d entries, %v; want grant, withdraw", n, err)
	}
	// Only counts and status left the box: every message on the box's
	// topics but the down-link is a report or a status.
	prefix := egress.DefaultTopicPrefix + "/" + cfg.Site.Store + "/" + cfg.Site.Device + "/"
	for _, m := range rec.Messages() {
		switch m.Topic {
		case topic:
		case prefix + "status":
			if m.Payload != egress.StatusOnline && m.Payload != egress.StatusOffline {
				t.Errorf("status %q", m.Payload)
			}
		case prefix + "footfall":
			if _, err := egress.ParseReport([]byte(m.Payload)); err != nil {
				t.Errorf("footfall topic carried %q", m.Payload)
			}
		default:
			t.Errorf("a message on %s: %q", m.Topic, m.Payload)
		}
	}
}

// watchSign opens the sign camera's operator page in Chromium (the browser
// lives until the test ends, at most d), waits until it plays, checks that
// both faces are redacted before anyone opts in, and returns the browser
// and the faces' watcher.
func watchSign(t *testing.T, bin, base string, d time.Duration, src gocv.Mat, inZone, other image.Rectangle) (context.Context, func(string, func(float64) bool) float64) {
	t.Helper()
	bctx, closeBrowser := openBrowser(t, bin, d)
	t.Cleanup(closeBrowser)
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/login")); err != nil {
		t.Fatal(err)
	}
	browserLogin(t, bctx, "correct horse", `#video-sign`)
	waitPlaying(t, bctx, "video-sign", image.Pt(640, 480), time.Now().Add(25*time.Second))
	evalString := func(js string) (string, error) { return chromedp.Run(bctx, chromedp.Evaluate[string](js)) }
	faces := watchFaces(t, evalString, src, inZone, other)
	faces("before opting in", func(a float64) bool { return a <= leak.DefaultThreshold })
	return bctx, faces
}

// waitMetricAt waits up to 20 s until veil's /metrics at base shows series
// at least atLeast.
func waitMetricAt(t *testing.T, base, series string, atLeast float64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); scrape(t, base+"/metrics")[series] < atLeast; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %g within 20 s", series, atLeast)
		}
	}
}
