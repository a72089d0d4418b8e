package egress

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/veil-edge/veil/internal/testenv"
)

// Helpers shared by the tests: a real mosquitto broker, a recording MQTT
// subscriber, a test PKI, logs kept per test.

// mosquittoPath returns the broker binary, or skips (fails under CI=true).
func mosquittoPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	const debian = "/usr/sbin/mosquitto" // not on a non-root PATH
	if _, err := os.Stat(debian); err != nil {
		testenv.Missing(t, "mosquitto is not installed (Debian package mosquitto; scripts/setup.sh installs it)")
	}
	return debian
}

// brokerOptions selects the broker's security.
type brokerOptions struct {
	tls         bool // TLS listener with a server certificate from a test CA
	requireCert bool // and clients must present a certificate from that CA
	password    bool // no anonymous clients; user "veil" with password "s3cret word"
}

// broker is a mosquitto process on a loopback port, with persistence in
// its own directory, that a test can stop and start again.
type broker struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	o    brokerOptions
	pki  *testPKI

	cmd    *exec.Cmd
	exited chan struct{}
}

const (
	testUser     = "veil"
	testPassword = "s3cret word"
)

// startBroker starts mosquitto for t and stops it in t.Cleanup.
func startBroker(t *testing.T, o brokerOptions) *broker {
	t.Helper()
	b := &broker{t: t, bin: mosquittoPath(t), dir: t.TempDir(), o: o}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	conf := []string{
		fmt.Sprintf("listener %d 127.0.0.1", b.port),
		"persistence true",
		"persistence_location " + b.dir + "/",
		"log_dest file " + filepath.Join(b.dir, "mosquitto.log"),
		"log_type error", "log_type warning", "log_type notice", "log_type information",
		"connection_messages true",
	}
	if os.Geteuid() == 0 {
		conf = append(conf, "user root") // else it drops to user mosquitto, who cannot read t.TempDir()
	}
	if o.tls {
		b.pki = newTestPKI(t)
		conf = append(conf, "cafile "+b.pki.caFile, "certfile "+b.pki.serverCert, "keyfile "+b.pki.serverKey)
		if o.requireCert {
			conf = append(conf, "require_certificate true")
		}
	}
	if o.password {
		pw := filepath.Join(b.dir, "passwd")
		out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, testUser, testPassword).CombinedOutput()
		if err != nil {
			testenv.Missing(t, fmt.Sprintf("mosquitto_passwd: %v: %s", err, out))
		}
		conf = append(conf, "allow_anonymous false", "password_file "+pw)
	} else {
		conf = append(conf, "allow_anonymous true")
	}
	if err := os.WriteFile(filepath.Join(b.dir, "mosquitto.conf"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			t.Logf("mosquitto log:\n%s", logs)
		}
	})
	b.start()
	return b
}

// url is the broker URL for a Publisher.
func (b *broker) url() string {
	if b.o.tls {
		return fmt.Sprintf("ssl://127.0.0.1:%d", b.port)
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", b.port)
}

// start runs mosquitto and waits until it accepts connections.
func (b *broker) start() {
	b.t.Helper()
	cmd := exec.Command(b.bin, "-c", filepath.Join(b.dir, "mosquitto.conf"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("starting mosquitto: %v", err)
	}
	b.cmd, b.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) { _ = cmd.Wait(); close(exited) }(b.exited)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-b.exited:
			logs, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			b.t.Fatalf("mosquitto exited: %s\n%s", stderr.String(), logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto not listening on port %d after 5 s", b.port)
		}
	}
}

// stop ends mosquitto cleanly (SIGTERM: it saves its sessions) and waits.
func (b *broker) stop() {
	b.t.Helper()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		b.t.Fatal("mosquitto did not stop within 5 s of SIGTERM")
	}
	b.cmd = nil
}

func (b *broker) kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.exited
	b.cmd = nil
}

// clientOptions are paho options for a test client of b (credentials and
// TLS as b needs them).
func (b *broker) clientOptions(clientID string) *mqtt.ClientOptions {
	co := mqtt.NewClientOptions().AddBroker(b.url()).SetClientID(clientID).
		SetConnectTimeout(2 * time.Second).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(100 * time.Millisecond).SetWriteTimeout(2 * time.Second)
	if b.o.password {
		co.SetUsername(testUser).SetPassword(testPassword)
	}
	if b.o.tls {
		pool := x509.NewCertPool()
		pool.AddCert(b.pki.ca)
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if b.o.requireCert {
			cert, err := tls.LoadX509KeyPair(b.pki.clientCert, b.pki.clientKey)
			if err != nil {
				b.t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		co.SetTLSConfig(tc)
	}
	return co
}

// publisherOptions are MQTTOptions for a Publisher of b, with short
// intervals so that tests are quick.
func (b *broker) publisherOptions() MQTTOptions {
	o := MQTTOptions{Broker: b.url(), ConnectTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond, AckTimeout: 5 * time.Second}
	if b.o.password {
		o.Username, o.Password = testUser, testPassword
	}
	if b.o.tls {
		o.CAFile = b.pki.caFile
		if b.o.requireCert {
			o.CertFile, o.KeyFile = b.pki.clientCert, b.pki.clientKey
		}
	}
	return o
}

// message is one MQTT message a recorder received.
type message struct {
	topic    string
	payload  string
	retained bool
}

// recorder is a real MQTT subscriber on "#" with a persistent session
// (fixed client id, CleanSession false, QoS 1) that keeps every message.
type recorder struct {
	t    *testing.T
	c    mqtt.Client
	mu   sync.Mutex
	msgs []message
}

// record connects a recorder to b; it disconnects in t.Cleanup.
func record(t *testing.T, b *broker) *recorder {
	t.Helper()
	rec := &recorder{t: t}
	subscribed := make(chan error, 1)
	co := b.clientOptions("veil-test-recorder").SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetOnConnectHandler(func(c mqtt.Client) {
			// Subscribing again on every connection is harmless with a
			// persistent session, and covers a broker that lost it.
			tok := c.Subscribe("#", 1, rec.handle)
			tok.WaitTimeout(2 * time.Second)
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	rec.c = mqtt.NewClient(co)
	rec.c.Connect()
	t.Cleanup(func() { rec.c.Disconnect(100) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("recorder cannot subscribe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("recorder not subscribed within 5 s")
	}
	return rec
}

func (rec *recorder) handle(_ mqtt.Client, m mqtt.Message) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.msgs = append(rec.msgs, message{m.Topic(), string(m.Payload()), m.Retained()})
}

func (rec *recorder) messages() []message {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.msgs)
}

// reports checks every message the recorder has seen, on any topic: each
// must be StatusOnline or StatusOffline on the status topic, or a valid
// report for this store and device on the footfall topic, not retained.
// This is the package-level proof that only counts leave the box. It
// returns the reports in arrival order.
func (rec *recorder) reports(footfall, status string) []Report {
	rec.t.Helper()
	var out []Report
	for _, m := range rec.messages() {
		switch m.topic {
		case status:
			if m.payload != StatusOnline && m.payload != StatusOffline {
				rec.t.Errorf("status topic carried %q", m.payload)
			}
		case footfall:
			r, err := ParseReport([]byte(m.payload))
			if err != nil {
				rec.t.Errorf("footfall topic carried something that is not a report: %q: %v", m.payload, err)
				continue
			}
			if m.retained {
				rec.t.Errorf("report %d/%d was retained", r.Boot, r.Seq)
			}
			if want := topicFor(r, "footfall"); m.topic != want {
				rec.t.Errorf("report for %s/%s on %s", r.Store, r.Device, m.topic)
			}
			out = append(out, r)
		default:
			rec.t.Errorf("message on unexpected topic %q: %q", m.topic, m.payload)
		}
	}
	return out
}

func topicFor(r Report, kind string) string {
	return DefaultTopicPrefix + "/" + r.Store + "/" + r.Device + "/" + kind
}

// waitReports waits until the recorder has seen a report for every
// identity in want, and returns all reports seen.
func (rec *recorder) waitReports(footfall, status string, want []ident, timeout time.Duration) []Report {
	rec.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := rec.reports(footfall, status)
		have := make(map[ident]bool, len(got))
		for _, r := range got {
			have[identOf(r)] = true
		}
		var missing []ident
		for _, id := range want {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			rec.t.Fatalf("after %s, %d of %d reports never arrived, first %v", timeout, len(missing), len(want), missing[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// retainedStatus subscribes afresh (clean session) to topic and returns the
// retained payload the broker hands a new subscriber, waiting up to 5 s for
// it to be want.
func retainedStatus(t *testing.T, b *broker, topic, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for i := 0; ; i++ {
		got := make(chan message, 1)
		c := mqtt.NewClient(b.clientOptions(fmt.Sprintf("veil-test-status-%d", i)).SetCleanSession(true))
		if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
			t.Fatalf("status client cannot connect: %v", tok.Error())
		}
		c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			select {
			case got <- message{m.Topic(), string(m.Payload()), m.Retained()}:
			default:
			}
		})
		select {
		case m := <-got:
			if !m.retained {
				t.Errorf("status %q was not retained", m.payload)
			}
			last = m.payload
		case <-time.After(time.Second):
			last = "(no retained message)"
		}
		c.Disconnect(100)
		if last == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("retained status on %s is %s, want %q", topic, last, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runPublisher runs a Publisher for box against b until the returned stop
// is called (or the test ends); stop checks that Run returned nil quickly.
func runPublisher(t *testing.T, o MQTTOptions, box *Outbox, log *slog.Logger) (*Publisher, func()) {
	t.Helper()
	p, err := NewPublisher(o, box, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			start := time.Now()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("Run took %s to return after cancel, want under 2 s", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLog returns a logger whose output the test prints if it fails, and
// the buffer it writes to. Unlike t.Log, it may be written after the test
// ends (paho calls handlers from its own goroutines).
func testLog(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type testPKI struct {
	ca                    *x509.Certificate
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	otherKey              string // a key that matches neither certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if p.ca, err = x509.ParseCertificate(caDER); err != nil {
		t.Fatal(err)
	}
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writeKey(t, dir, name+".key", key)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	p.otherKey = writeKey(t, dir, "other.key", newKey(t))
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeKey(t *testing.T, dir, name string, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "PRIVATE KEY", der)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
