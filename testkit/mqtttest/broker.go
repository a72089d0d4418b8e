// Package mqtttest gives tests a real MQTT broker and a real subscriber,
// for any package that talks MQTT (egress, box, head office).
//
// Parts:
//
//   - Broker (broker.go): a mosquitto process on a loopback port, with
//     persistence in its own directory, that a test can stop (SIGTERM: it
//     saves its sessions), kill (SIGKILL) and start again on the same port.
//     Options select plain, password, TLS and mutual-TLS listeners.
//   - Recorder (recorder.go): a paho subscriber on "#" with a persistent
//     session (fixed client id, CleanSession false, QoS 1) that keeps every
//     message it receives, and Broker.WaitRetained, which asks the broker
//     for a topic's retained message as a new subscriber would.
//   - PKI (pki.go): a test CA with a server certificate for 127.0.0.1 and a
//     client certificate, as PEM files whose paths are exported.
//
// Everything is cleaned up by t.Cleanup: processes are killed, clients
// disconnected, and no goroutine is left running (testenv.Main checks).
// When mosquitto is not installed, Start skips the test, or fails it under
// CI=true (testenv.Missing).
package mqtttest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/testkit/testenv"
)

// The one user of a broker started with Options.Password.
const (
	User         = "veil"
	UserPassword = "s3cret word"
)

// Options selects a broker's security. The zero value is a plain TCP
// listener that accepts anonymous clients.
type Options struct {
	// TLS serves TLS only, with a server certificate for 127.0.0.1 from a
	// new test CA (Broker.PKI).
	TLS bool
	// RequireCert (with TLS) makes clients present a certificate from that
	// CA (PKI.ClientCert and PKI.ClientKey).
	RequireCert bool
	// Password refuses anonymous clients; the one user is User with
	// password UserPassword.
	Password bool
	// MaxInflight is mosquitto's max_inflight_messages: how many QoS 1
	// messages it sends a client before waiting for acknowledgements; 0
	// keeps mosquitto's default (20).
	MaxInflight int
	// MaxQueued is mosquitto's max_queued_messages: how many messages it
	// keeps for a disconnected persistent session; 0 keeps its default
	// (1000), -1 means no limit.
	MaxQueued int
	// ACL, when set, is mosquitto's acl_file content (e.g. "pattern read #"
	// lines, which apply to every client); SetACL changes it while the
	// broker runs.
	ACL string
}

// Broker is a mosquitto process on a loopback port with persistence in its
// own directory. It belongs to the test that started it: its methods fail
// that test (t.Fatal), so call them from that test's goroutine.
type Broker struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	o    Options
	pki  *PKI

	cmd      *exec.Cmd     // nil while stopped
	exited   chan struct{} // closed when cmd has exited
	nclients int           // clients Retained has made, for unique ids
}

// mosquittoPath returns the broker binary, or skips (fails under CI=true).
func mosquittoPath(t testing.TB) string {
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

// Start starts mosquitto for t on a free loopback port and waits until it
// accepts connections. t.Cleanup kills it and, if t failed, logs its log.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	b := &Broker{t: t, bin: mosquittoPath(t), dir: t.TempDir(), o: o}
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
		"log_dest file " + b.logFile(),
		"log_type error", "log_type warning", "log_type notice", "log_type information",
		"connection_messages true",
	}
	if o.MaxInflight != 0 {
		conf = append(conf, fmt.Sprintf("max_inflight_messages %d", o.MaxInflight))
	}
	switch {
	case o.MaxQueued < 0:
		conf = append(conf, "max_queued_messages 0")
	case o.MaxQueued > 0:
		conf = append(conf, fmt.Sprintf("max_queued_messages %d", o.MaxQueued))
	}
	if o.ACL != "" {
		if err := os.WriteFile(b.aclFile(), []byte(o.ACL+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		conf = append(conf, "acl_file "+b.aclFile())
	}
	if os.Geteuid() == 0 {
		conf = append(conf, "user root") // else it drops to user mosquitto, who cannot read t.TempDir()
	}
	if o.TLS {
		b.pki = NewPKI(t)
		conf = append(conf, "cafile "+b.pki.CAFile, "certfile "+b.pki.ServerCert, "keyfile "+b.pki.ServerKey)
		if o.RequireCert {
			conf = append(conf, "require_certificate true")
		}
	}
	if o.Password {
		pw := filepath.Join(b.dir, "passwd")
		out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, User, UserPassword).CombinedOutput()
		if err != nil {
			testenv.Missing(t, fmt.Sprintf("mosquitto_passwd: %v: %s", err, out))
		}
		conf = append(conf, "allow_anonymous false", "password_file "+pw)
	} else {
		conf = append(conf, "allow_anonymous true")
	}
	if err := os.WriteFile(b.confFile(), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Kill()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.Log())
		}
	})
	b.Start()
	return b
}

func (b *Broker) confFile() string { return filepath.Join(b.dir, "mosquitto.conf") }
func (b *Broker) logFile() string  { return filepath.Join(b.dir, "mosquitto.log") }
func (b *Broker) aclFile() string  { return filepath.Join(b.dir, "acl") }

// SetACL replaces the access control list of a broker started with
// Options.ACL and makes the running mosquitto reload it (SIGHUP), as an
// operator would; it waits until the log says it reloaded.
func (b *Broker) SetACL(acl string) {
	b.t.Helper()
	if b.o.ACL == "" {
		b.t.Fatal("mqtttest: SetACL on a broker started without Options.ACL")
	}
	if err := os.WriteFile(b.aclFile(), []byte(acl+"\n"), 0o600); err != nil {
		b.t.Fatal(err)
	}
	if b.cmd == nil {
		return
	}
	before := strings.Count(b.Log(), "Reloading config")
	_ = b.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); strings.Count(b.Log(), "Reloading config") <= before; {
		if time.Now().After(deadline) {
			b.t.Fatal("mosquitto did not reload its configuration within 5 s of SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what mosquitto has logged so far (connections included).
func (b *Broker) Log() string {
	logs, _ := os.ReadFile(b.logFile())
	return string(logs)
}

// URL is the broker's URL for a client: tcp://127.0.0.1:port, or
// ssl://127.0.0.1:port with Options.TLS. It stays the same across Stop and
// Start.
func (b *Broker) URL() string {
	if b.o.TLS {
		return fmt.Sprintf("ssl://127.0.0.1:%d", b.port)
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", b.port)
}

// Options returns the options the broker was started with.
func (b *Broker) Options() Options { return b.o }

// PKI returns the test PKI of a TLS broker, nil without Options.TLS.
func (b *Broker) PKI() *PKI { return b.pki }

// Running reports whether the mosquitto process is running (started and
// not stopped or killed by the test).
func (b *Broker) Running() bool { return b.cmd != nil }

// Start runs mosquitto again after Stop or Kill (Start, the function,
// already runs it once) and waits until it accepts connections; it
// restores the sessions and retained messages it last saved. It does
// nothing while the broker runs.
func (b *Broker) Start() {
	b.t.Helper()
	if b.cmd != nil {
		return
	}
	cmd := exec.Command(b.bin, "-c", b.confFile())
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
			b.cmd = nil
			b.t.Fatalf("mosquitto exited: %s\n%s", stderr.String(), b.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto not listening on port %d after 5 s", b.port)
		}
	}
}

// Stop ends mosquitto cleanly (SIGTERM: it saves its sessions, queued
// messages and retained messages) and waits for it to exit. It does
// nothing while the broker is stopped.
func (b *Broker) Stop() {
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

// Kill ends mosquitto with SIGKILL, as a crash or power cut would: what it
// has not saved since its last Start is lost. It waits for the process to
// exit and does nothing while the broker is stopped.
func (b *Broker) Kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.exited
	b.cmd = nil
}

// ClientOptions are paho options for a test client of b with the given
// client id: credentials and TLS as b needs them, short timeouts and retry
// intervals. The caller adds the session options it wants.
func (b *Broker) ClientOptions(clientID string) *mqtt.ClientOptions {
	b.t.Helper()
	co := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(clientID).
		SetConnectTimeout(2 * time.Second).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(100 * time.Millisecond).SetWriteTimeout(2 * time.Second)
	if b.o.Password {
		co.SetUsername(User).SetPassword(UserPassword)
	}
	if b.o.TLS {
		co.SetTLSConfig(b.tlsConfig())
	}
	return co
}

// tlsConfig trusts b's CA and, with RequireCert, presents the client
// certificate.
func (b *Broker) tlsConfig() *tls.Config {
	b.t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(b.pki.CA)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if b.o.RequireCert {
		cert, err := tls.LoadX509KeyPair(b.pki.ClientCert, b.pki.ClientKey)
		if err != nil {
			b.t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc
}
