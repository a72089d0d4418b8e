package box_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/hq/relay"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
	"github.com/veil-edge/veil/web"
)

// veilHQ is the real veil-hq binary run as a process on a fixed address,
// so that it can be killed and started again behind the same URL, as a
// restart after a crash is.
type veilHQ struct {
	t      *testing.T
	bin    string
	config string
	addr   string
	logs   testenv.Buffer
	cmd    *exec.Cmd
	done   chan error
}

// buildVeilHQ builds cmd/veil-hq into a temporary directory.
func buildVeilHQ(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "veil-hq")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/veil-hq")
	cmd.Dir = testenv.Root()
	cmd.Env = os.Environ()
	if os.Getenv("GOFLAGS") == "" {
		cmd.Env = append(cmd.Env, "GOFLAGS=-mod=mod")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/veil-hq: %v\n%s", err, out)
	}
	return bin
}

// newVeilHQ writes veil-hq's config for broker b, relaying for the box
// (site, key), with its files in dir, and returns it with head office's
// relay public key (its key file made now, as veil-hq relay-key would).
func newVeilHQ(t *testing.T, b *mqtttest.Broker, dir string, site config.Site, boxKey ed25519.PublicKey) (*veilHQ, ed25519.PublicKey) {
	t.Helper()
	registry := filepath.Join(dir, "boxes.jsonl")
	line := fmt.Sprintf(`{"device":%q,"store":%q,"key":%q}`+"\n", site.Device, site.Store, base64.StdEncoding.EncodeToString(boxKey))
	if err := os.WriteFile(registry, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	relayKey, err := consent.LoadKey(filepath.Join(dir, "relay.key"))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := web.HashPassword("head office pw")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	yaml := fmt.Sprintf("mqtt:\n  broker: %s\nhq:\n  listen: %s\n  password_hash: '%s'\n  sqlite_path: %s\n  client_id: veil-hq-restart-test\n"+
		"  relay_boxes: %s\n  relay_key_file: %s\n  relay_ledger: %s\nlog:\n  level: debug\n",
		b.URL(), addr, hash, filepath.Join(dir, "hq.db"), registry, filepath.Join(dir, "relay.key"), filepath.Join(dir, "consent.jsonl"))
	path := filepath.Join(dir, "hq.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	hq := &veilHQ{t: t, bin: buildVeilHQ(t), config: path, addr: addr}
	t.Cleanup(hq.kill)
	return hq, relayKey.Public().(ed25519.PublicKey)
}

// URL is head office's base URL.
func (h *veilHQ) URL() string { return "http://" + h.addr }

// start runs veil-hq and waits until it serves the phone pages.
func (h *veilHQ) start() {
	h.t.Helper()
	h.cmd = exec.Command(h.bin, "-c", h.config)
	h.cmd.Stdout, h.cmd.Stderr = &h.logs, &h.logs
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.done = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(h.cmd, h.done)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// A code of no box: 400 once the relay serves /c/.
		if resp, err := http.Get(h.URL() + "/c/v1.x.y"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusBadRequest {
				return
			}
		}
		select {
		case err := <-h.done:
			h.t.Fatalf("veil-hq exited: %v\n%s", err, h.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("veil-hq does not serve /c/ after 20 s:\n%s", h.logs.String())
		}
	}
}

// kill ends veil-hq with SIGKILL, as a crash or power cut would: nothing
// is written on the way out.
func (h *veilHQ) kill() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done
	h.cmd = nil
}

// signQR reads the sign's QR code on the box at base and returns its URL.
func signQR(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/signage/sign/qr.png")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	img, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decoding the sign's QR code: %v", err)
	}
	return res.GetText()
}

// TestConsentRelayWithdrawAfterRestart: the shopper opts in on head
// office's phone page (the sign's QR code points at the real veil-hq) in
// Chromium; the grant reaches the box over a real mosquitto and the face
// on the spot is shown in the operator's live view. Then veil-hq is killed
// (SIGKILL) and started again, and the shopper taps Withdraw on the same
// page, which they never left: head office still knows the consent, the
// withdrawal reaches the box and the face is redacted again. Head office's
// grants file holds no identifier of the phone, nor the secret in its
// cookie.
func TestConsentRelayWithdrawAfterRestart(t *testing.T) {
	bin := chromiumPath(t)
	cfg := testConfig(t)
	if _, err := models.Verify(cfg.Models.Dir); err != nil {
		testenv.Missing(t, fmt.Sprintf("face models: %v (run scripts/setup.sh)", err))
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	video, src, inZone, other, zone := consentScene(t)
	defer src.Close()

	dir := t.TempDir()
	cfg.Consent.Ledger = filepath.Join(dir, "consent", "ledger.jsonl")
	cfg.Consent.KeyFile = filepath.Join(dir, "consent", "box.key")
	boxKey, err := consent.LoadKey(cfg.Consent.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	hqDir := filepath.Join(dir, "hq")
	if err := os.MkdirAll(hqDir, 0o700); err != nil {
		t.Fatal(err)
	}
	hq, hqKey := newVeilHQ(t, b, hqDir, cfg.Site, boxKey.Public().(ed25519.PublicKey))
	hq.start()
	cfg.Consent.RelayKey = base64.StdEncoding.EncodeToString(hqKey)
	cfg.Consent.PublicURL = hq.URL() + "/"
	cfg.MQTT.Broker = b.URL()

	cam := config.Camera{Name: "sign", Source: video, Loop: true, OptinZone: []int{zone.Min.X, zone.Min.Y, zone.Max.X, zone.Max.Y}}
	var logs testenv.Buffer
	_, base, stop := startLiveService(t, cfg, []config.Camera{cam}, &logs)
	defer stop()
	defer func() {
		if t.Failed() {
			t.Logf("veil's log:\n%s\nveil-hq's log:\n%s", logs.String(), hq.logs.String())
		}
	}()
	bctx, faces := watchSign(t, bin, base, 120*time.Second, src, inZone, other)
	redacted := func(a float64) bool { return a <= leak.DefaultThreshold }
	waitMetric := func(series string, atLeast float64) { t.Helper(); waitMetricAt(t, base, series, atLeast) }
	waitMetric("veil_consent_downlink_connected", 1)

	// The shopper's phone, in its own tab: the sign's code, head office's
	// notice, Yes.
	u := signQR(t, base)
	if !strings.HasPrefix(u, hq.URL()+"/c/v1.") {
		t.Fatalf("the sign's QR code reads %q, want head office's %s/c/v1. URL", u, hq.URL())
	}
	phone, closePhone := chromedp.NewContext(bctx)
	defer closePhone()
	text := func() string {
		t.Helper()
		s, err := chromedp.Run(phone, chromedp.Text(`body`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := chromedp.Do(phone, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(u), chromedp.WaitVisible(`#yes`),
		chromedp.Click(`#agree`), chromedp.Click(`#yes`), chromedp.WaitVisible(`#withdraw`)); err != nil {
		t.Fatalf("opting in on the phone: %v\n%s", err, text())
	}
	waitMetric(`veil_consent_downlink_accepted_total{kind="grant"}`, 1)
	faces("opted in at head office: the face on the spot shown", func(a float64) bool { return a >= 0.6 })
	var secret string // the phone's, from its cookie
	if err := chromedp.Do(phone, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{hq.URL() + "/c/"}})
		for _, c := range res.Cookies {
			if c.Name == "veil_consent" {
				_, secret, _ = strings.Cut(c.Value, ".")
			}
		}
		return err
	})); err != nil || secret == "" {
		t.Fatalf("the phone's consent cookie: %q, %v", secret, err)
	}

	// veil-hq crashes and comes back; the phone page stays as it was.
	hq.kill()
	hq.start()

	// Withdraw on the same page. Until head office's relay has its broker
	// connection back it says the box cannot be reached and keeps the
	// button; the shopper taps again.
	notice := consent.DefaultNotice()
	answered := func(body string) bool {
		return strings.Contains(body, notice.Texts["en"].Withdrawn) || strings.Contains(body, consent.ErrUnavailable.Error()) ||
			strings.Contains(body, consent.ErrNoSuchConsent.Error())
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		// The page may still be loading the previous answer: wait for
		// the button, and try again if it went away under the click.
		if err := chromedp.Do(phone, chromedp.WaitVisible(`#withdraw`), chromedp.Click(`#withdraw`)); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("withdrawing on the phone: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		body := text()
		for wait := time.Now().Add(15 * time.Second); !answered(body) && time.Now().Before(wait); body = text() {
			time.Sleep(100 * time.Millisecond)
		}
		if strings.Contains(body, notice.Texts["en"].Withdrawn) {
			break
		}
		if !strings.Contains(body, consent.ErrUnavailable.Error()) || time.Now().After(deadline) {
			t.Fatalf("after Withdraw (veil-hq restarted) the phone says:\n%s", body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	waitMetric(`veil_consent_downlink_accepted_total{kind="withdraw"}`, 1)
	faces("withdrawn after veil-hq restarted", redacted)
	for range 3 {
		if a := faces("still withdrawn", func(float64) bool { return true }); a > leak.DefaultThreshold {
			t.Errorf("the face on the spot is shown again after withdrawal (corr %.3f)", a)
		}
	}

	// Head office's records: grant and withdraw, nothing ended by the
	// restart; its grants file knows the consent as withdrawn and holds
	// nothing of the phone.
	ledgerTypes := func(path string) string {
		t.Helper()
		if _, err := consent.VerifyLedger(path); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var e consent.Entry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, string(e.Type))
		}
		return strings.Join(got, ",")
	}
	if got := ledgerTypes(filepath.Join(hqDir, "consent.jsonl")); got != "grant,withdraw" {
		t.Errorf("head office's ledger %s, want grant,withdraw", got)
	}
	if got := ledgerTypes(cfg.Consent.Ledger); got != "grant,bind,unbind,withdraw" {
		t.Errorf("the box's ledger %s, want grant,bind,unbind,withdraw", got)
	}
	data, err := os.ReadFile(relay.GrantsFile(filepath.Join(hqDir, "consent.jsonl")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"ended": "withdrawn"`) {
		t.Errorf("head office's grants file does not show the consent withdrawn:\n%s", data)
	}
	for _, banned := range []string{"127.0.0.1", "Mozilla", "HeadlessChrome", "veil_consent", secret} {
		if strings.Contains(string(data), banned) {
			t.Errorf("head office's grants file holds %q:\n%s", banned, data)
		}
	}
}
