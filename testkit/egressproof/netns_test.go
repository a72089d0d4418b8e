package egressproof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-edge/veil/testkit/testenv"
)

// tools are the system programs the proof runs.
type tools struct {
	ip, tcpdump, mosquitto, sysctl string
}

// needTools returns the programs the proof needs, or skips (fails under
// CI=true) when one is missing or the test cannot make namespaces.
func needTools(t *testing.T) tools {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the egress proof makes network namespaces and captures packets: run it as root")
	}
	find := func(name string, fallbacks ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, p := range fallbacks {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		testenv.Missing(t, name+" is not installed (scripts/setup.sh installs iproute2, tcpdump, mosquitto and procps)")
		return ""
	}
	tl := tools{
		ip:        find("ip", "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"),
		tcpdump:   find("tcpdump", "/usr/bin/tcpdump", "/usr/sbin/tcpdump"),
		mosquitto: find("mosquitto", "/usr/sbin/mosquitto"),
		sysctl:    find("sysctl", "/usr/sbin/sysctl", "/sbin/sysctl"),
	}
	testenv.Need(t, testenv.VTest)
	return tl
}

// run runs a command to completion and fails the test if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testnet is two network namespaces joined by one veth pair: the box,
// where veil runs, and head office, where the broker runs. The box's veth
// is its only link besides loopback, and its default route goes over it,
// so anything veil sends off the box to any address crosses the veth.
type testnet struct {
	box, hq         string // namespace names
	boxIf, hqIf     string // veth ends
	boxAddr, hqAddr netip.Addr
	boxMAC, hqMAC   mac
}

// newTestnet makes the namespaces and deletes them in t.Cleanup (after the
// processes in them, which are registered later, have been stopped).
func newTestnet(t *testing.T, tl tools) *testnet {
	t.Helper()
	pid := os.Getpid()
	n := &testnet{
		box: fmt.Sprintf("veilbox-%d", pid), hq: fmt.Sprintf("veilhq-%d", pid),
		boxIf: fmt.Sprintf("vbox%d", pid%10_000_000), hqIf: fmt.Sprintf("vhq%d", pid%10_000_000),
		boxAddr: netip.AddrFrom4([4]byte{10, 231, byte(pid), 1}),
		hqAddr:  netip.AddrFrom4([4]byte{10, 231, byte(pid), 2}),
		boxMAC:  mac{0x02, 'v', 'e', 'i', 'l', 0x01}, // locally administered
		hqMAC:   mac{0x02, 'v', 'e', 'i', 'l', 0x02},
	}
	for _, ns := range []string{n.box, n.hq} {
		// A namespace of this name is left over from an earlier run with
		// this pid (which cannot be running now): remove it.
		_ = exec.Command(tl.ip, "netns", "del", ns).Run()
		if out, err := exec.Command(tl.ip, "netns", "add", ns).CombinedOutput(); err != nil {
			testenv.Missing(t, fmt.Sprintf("cannot make a network namespace (ip netns add: %v: %s)", err, bytes.TrimSpace(out)))
		}
		t.Cleanup(func() {
			if out, err := exec.Command(tl.ip, "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	run(t, tl.ip, "link", "add", n.boxIf, "address", n.boxMAC.String(), "netns", n.box,
		"type", "veth", "peer", "name", n.hqIf, "address", n.hqMAC.String(), "netns", n.hq)
	for _, side := range []struct{ ns, ifc, addr string }{
		{n.box, n.boxIf, n.boxAddr.String()},
		{n.hq, n.hqIf, n.hqAddr.String()},
	} {
		// No IPv6 on the link: nothing (link-local addresses, router
		// solicitations, MLD) appears that the kernel rather than veil sent.
		if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
			run(t, tl.ip, "netns", "exec", side.ns, tl.sysctl, "-q", "-w",
				"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
				"net.ipv6.conf."+side.ifc+".disable_ipv6=1")
		}
		run(t, tl.ip, "-n", side.ns, "addr", "add", side.addr+"/30", "dev", side.ifc)
		run(t, tl.ip, "-n", side.ns, "link", "set", "lo", "up")
		run(t, tl.ip, "-n", side.ns, "link", "set", side.ifc, "up")
	}
	run(t, tl.ip, "-n", n.box, "route", "add", "default", "via", n.hqAddr.String())
	// The box has loopback and the veth and nothing else.
	links := run(t, tl.ip, "-n", n.box, "-o", "link", "show")
	if got := strings.Count(strings.TrimSpace(links), "\n") + 1; got != 2 {
		t.Fatalf("box namespace has %d links, want lo and %s:\n%s", got, n.boxIf, links)
	}
	return n
}

// proc is a process the test started; t.Cleanup kills it if it is still
// running and waits for it.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testenv.Buffer // stdout and stderr
	done chan struct{}
	err  error // from Wait, once done is closed
}

func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(args[0], args[1:]...), out: &testenv.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = env
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
		}
	})
	return p
}

// stop sends sig and waits up to timeout for the process to exit.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %s of %s", p.name, timeout, sig)
	}
}

// waitOutput waits until the output matches re or the process exits.
func (p *proc) waitOutput(t *testing.T, re *regexp.Regexp, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !re.MatchString(p.out.String()) {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, re, p.out)
		case <-deadline.C:
			t.Fatalf("%s did not print %q within %s:\n%s", p.name, re, timeout, p.out)
		case <-tick.C:
		}
	}
}

// env is the test's environment without VEIL_* variables, which would
// change veil's configuration.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VEIL_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// startBroker starts mosquitto in the hq namespace, listening on the hq
// address only, and waits until it accepts connections.
func startBroker(t *testing.T, tl tools, n *testnet, port int) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d %s\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type all\nconnection_messages true\n", port, n.hqAddr)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "mosquitto", env(), tl.ip, "netns", "exec", n.hq, tl.mosquitto, "-c", conf)
	p.waitOutput(t, regexp.MustCompile(`mosquitto version \S+ running`), 10*time.Second)
	return p
}

// capture is tcpdump writing every frame of one interface to a file.
type capture struct {
	p    *proc
	path string
}

// startCapture starts tcpdump on the box's veth and waits until it is
// capturing and has written the file header.
func startCapture(t *testing.T, tl tools, n *testnet) *capture {
	t.Helper()
	c := &capture{path: filepath.Join(t.TempDir(), "box.pcap")}
	// -Z root: Debian's tcpdump otherwise drops to its own user, who cannot
	// write in the test's directory. -s 0: whole frames.
	c.p = startProc(t, "tcpdump", env(), tl.ip, "netns", "exec", n.box,
		tl.tcpdump, "-i", n.boxIf, "-w", c.path, "-U", "-n", "-s", "0", "--immediate-mode", "-Z", "root")
	c.p.waitOutput(t, regexp.MustCompile(`listening on `+regexp.QuoteMeta(n.boxIf)), 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, err := os.Stat(c.path); err == nil && st.Size() >= pcapHeaderLen {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump wrote no pcap header to %s within 5s:\n%s", c.path, c.p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var tcpdumpStats = regexp.MustCompile(`(?m)^(\d+) packets? captured\n(\d+) packets? received by filter\n(\d+) packets? dropped by kernel`)

// stop stops tcpdump, checks that the kernel dropped nothing, and returns
// the capture's records.
func (c *capture) stop(t *testing.T) []record {
	t.Helper()
	if err := c.p.stop(syscall.SIGINT, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if c.p.err != nil {
		t.Fatalf("tcpdump: %v\n%s", c.p.err, c.p.out)
	}
	m := tcpdumpStats.FindStringSubmatch(c.p.out.String())
	if m == nil {
		t.Fatalf("tcpdump printed no statistics:\n%s", c.p.out)
	}
	captured, _ := strconv.Atoi(m[1])
	if dropped, _ := strconv.Atoi(m[3]); dropped != 0 {
		t.Fatalf("tcpdump: the kernel dropped %d packets; the capture is incomplete:\n%s", dropped, c.p.out)
	}
	data, err := os.ReadFile(c.path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readPcap(data)
	if err != nil {
		t.Fatalf("%s: %v", c.path, err)
	}
	if len(recs) != captured {
		t.Fatalf("%s holds %d frames, tcpdump says it captured %d", c.path, len(recs), captured)
	}
	return recs
}
