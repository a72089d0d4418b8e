package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/web"
)

// TestRelayMounted: with hq.relay_boxes set, veil-hq serves the phone pages
// at /c/ without a login, for codes of registered boxes only. (The relay's
// way down to a box is tested end to end in box.)
func TestRelayMounted(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()
	pub, boxKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	registry := filepath.Join(dir, "boxes.jsonl")
	line := fmt.Sprintf(`{"device":"box-1","store":"shop-a","key":%q}`+"\n", base64.StdEncoding.EncodeToString(pub))
	if err := os.WriteFile(registry, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := web.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default
	cfg.MQTT.Broker = b.URL()
	cfg.HQ.SQLitePath = filepath.Join(dir, "hq.db")
	cfg.HQ.PasswordHash = hash
	cfg.HQ.RelayBoxes = registry
	cfg.HQ.RelayKeyFile = filepath.Join(dir, "relay.key")
	cfg.HQ.RelayLedger = filepath.Join(dir, "consent.jsonl")
	srv, err := New(context.Background(), Options{Config: cfg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Relay() == nil {
		t.Fatal("relay not started")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	urls := make(chan string, 1)
	go func() { done <- srv.Run(ctx, l, func(u string) { urls <- u }) }()
	defer func() { cancel(); <-done }()
	base := <-urls

	token := func(key ed25519.PrivateKey, box string) string {
		return consent.Token{Box: box, Camera: "door", Zone: "door-spot", Notice: consent.DefaultNotice().Version,
			Nonce: consent.NewNonce(), Expires: time.Now().Add(time.Minute).Unix()}.Sign(key)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name, token string
		status      int
		want        string
	}{
		{"a registered box's code", token(boxKey, "box-1"), http.StatusOK, `name="choice"`},
		{"a code signed by another key", token(stranger, "box-1"), http.StatusBadRequest, html.EscapeString(consent.ErrTokenSignature.Error())},
		{"an unregistered box's code", token(stranger, "box-9"), http.StatusBadRequest, html.EscapeString(consent.ErrTokenSignature.Error())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(base + "c/" + tc.token)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Errorf("GET /c/<code>: %s; want %d with %q in:\n%.600s", resp.Status, tc.status, tc.want, body)
			}
		})
	}
}
