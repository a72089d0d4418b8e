package hqcli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
	"github.com/veil-edge/veil/web"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// hq runs veil-hq's command line in-process with args and returns its
// output and error.
func hq(ctx context.Context, args ...string) (string, error) {
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hq.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRefusals: what veil-hq cannot run with is refused before it starts,
// naming the key and what it allows.
func TestRefusals(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"no broker", "hq:\n  password_hash: \"\"\n", "mqtt.broker is empty"},
		{"no password", "mqtt:\n  broker: tcp://127.0.0.1:1883\n", "hq.password_hash is empty"},
		{"bad store", "mqtt:\n  broker: tcp://127.0.0.1:1883\nhq:\n  store: mysql\n", `hq.store: "mysql" is not supported; allowed sqlite, postgres`},
		{"postgres without dsn", "mqtt:\n  broker: tcp://127.0.0.1:1883\nhq:\n  store: postgres\n", "hq.postgres_dsn: is empty"},
		{"unknown key", "hq:\n  lisen: :80\n", `did you mean "hq.listen"?`},
		{"missing registry", "mqtt:\n  broker: tcp://127.0.0.1:1883\nhq:\n  password_hash: $HASH\n  sqlite_path: $DIR/hq.db\n  relay_boxes: $DIR/none.jsonl\n", "hq.relay_boxes"},
		{"missing box registry", "mqtt:\n  broker: tcp://127.0.0.1:1883\nhq:\n  password_hash: $HASH\n  sqlite_path: $DIR/hq.db\n  boxes: $DIR/none.jsonl\n", "hq.boxes: box registry: open"},
		{"no box registry", "mqtt:\n  broker: tcp://127.0.0.1:1883\nhq:\n  password_hash: $HASH\n  sqlite_path: $DIR/hq.db\n", "hq.boxes is empty (and so is hq.relay_boxes): veil-hq would refuse every report"},
		{"empty box registry", "mqtt:\n  broker: tcp://127.0.0.1:1883\nhq:\n  password_hash: $HASH\n  sqlite_path: $DIR/hq.db\n  boxes: /dev/null\n", "hq.boxes: box registry /dev/null lists no box"},
		{"bad unsigned devices", "hq:\n  unsigned_devices: box-7\n", `hq.unsigned_devices: "box-7" is not a list of store/device; allowed empty (none) or store/device names separated by commas`},
		{"bad max rate", "hq:\n  max_rate: 5000\n", "hq.max_rate: 5000 is out of range; allowed 0.1..1000"},
	}
	hash, err := web.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := strings.NewReplacer("$HASH", hash, "$DIR", t.TempDir()).Replace(tc.yaml)
			path := writeConfig(t, yaml)
			// veil-hq check refuses what veil-hq itself would.
			for _, args := range [][]string{{"-c", path}, {"check", "-c", path}} {
				_, err := hq(context.Background(), args...)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("veil-hq %v: error %v; want one containing %q", args[:len(args)-1], err, tc.want)
				}
			}
		})
	}
	t.Run("check passes", func(t *testing.T) {
		dir := t.TempDir()
		yaml := "mqtt:\n  broker: tcp://127.0.0.1:1883\nhq:\n  password_hash: " + hash + "\n  sqlite_path: " + dir + "/hq.db\n  unsigned_devices: shop-1/box-1\n"
		out, err := hq(context.Background(), "check", "-c", writeConfig(t, yaml))
		if err != nil || !strings.Contains(out, ": ok") || !strings.Contains(out, "1 device(s) allowed unsigned") {
			t.Errorf("veil-hq check of a good config: %v\n%s", err, out)
		}
	})
}

// TestRelayKey prints the relay key's public half, the same on every call
// (the key file is created once).
func TestRelayKey(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, "hq:\n  relay_key_file: "+filepath.Join(dir, "relay.key")+"\n")
	first, err := hq(context.Background(), "relay-key", "-c", path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(first))
	if err != nil || len(key) != ed25519.PublicKeySize {
		t.Fatalf("relay-key printed %q: not a base64 Ed25519 public key (%v)", first, err)
	}
	if again, _ := hq(context.Background(), "relay-key", "-c", path); again != first {
		t.Errorf("second call printed %q, first %q", again, first)
	}
}

// TestServes: veil-hq starts with a valid config, answers /healthz once
// subscribed, keeps the dashboard behind a login, and stops on cancel.
func TestServes(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	hash, err := web.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	path := writeConfig(t, "mqtt:\n  broker: "+b.URL()+"\nhq:\n  listen: "+addr+"\n  password_hash: "+hash+
		"\n  sqlite_path: "+filepath.Join(dir, "hq.db")+"\n  relay_key_file: "+filepath.Join(dir, "relay.key")+
		"\n  unsigned_devices: shop-a/box-1\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := hq(ctx, "-c", path); done <- err }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no healthy /healthz within 20 s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("dashboard without login: %s to %q; want a redirect to /login", resp.Status, resp.Header.Get("Location"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("veil-hq: %v", err)
	}
}
