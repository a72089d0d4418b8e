// Package pgtest gives tests a real PostgreSQL server: Debian's binaries
// (package postgresql, which scripts/setup.sh installs), run from a fresh
// temporary directory (on tmpfs, /dev/shm, when there is one), listening
// only on a unix socket there, with trust authentication, durability off
// (fsync), and stopped when done.
//
// Start gives a test a fresh, empty database on one server shared by the
// whole test binary, started on first use (initdb and startup take about a
// second, a new database some 10-30 milliseconds). Its TestMain stops that server
// after the tests, before the leak check:
//
//	func TestMain(m *testing.M) { testenv.Main(m, pgtest.Stop) }
//
// NewServer starts a server of the test's own, stopped by t.Cleanup.
//
// PostgreSQL refuses to run as root: as root, initdb and postgres run as the
// postgres system user (made by the Debian package), who owns the server's
// directory. When the binaries are missing, the test is skipped, or fails
// under CI=true (testenv.Missing).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-edge/veil/testkit/testenv"
)

// User is the superuser every server has; trust authentication lets it in
// without a password.
const User = "postgres"

// port is the port number in the socket's name (.s.PGSQL.5432); nothing
// listens on TCP.
const port = 5432

// tmpfs is where servers keep their data when it can: memory.
const tmpfs = "/dev/shm"

// Deadlines: generous, for a loaded CI machine.
const (
	initTimeout  = 2 * time.Minute  // initdb
	readyTimeout = time.Minute      // from starting postgres to its first connection
	stopTimeout  = 30 * time.Second // from SIGINT (fast shutdown) to exit, then SIGKILL
)

// Server is a running PostgreSQL server: a postgres process with its data
// directory and unix socket in a temporary directory of its own.
type Server struct {
	dir    string // temporary; holds data/, the socket and server.log
	cred   *syscall.Credential
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	dbs    atomic.Int64  // databases created, for unique names

	stopOnce sync.Once
	stopErr  error
}

// shared is the server Start uses, started by the first call.
var shared struct {
	mu  sync.Mutex
	s   *Server
	err error // why it could not start; every later Start fails with it
}

// Start returns the DSN of a new, empty database for t, on the server
// shared by the test binary; the first call starts that server. The
// package's TestMain must stop it with Stop. The database is dropped by
// t.Cleanup: close every connection to it before then (clean-ups run last
// registered first, so a Store opened after Start is closed in time).
func Start(t testing.TB) (dsn string) {
	t.Helper()
	bin := binDir(t)
	shared.mu.Lock()
	if shared.s == nil && shared.err == nil {
		shared.s, shared.err = start(bin)
	}
	s, err := shared.s, shared.err
	shared.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: shared server: %v", err)
	}
	return s.CreateDB(t)
}

// Stop stops the server Start shared, if it was started, and removes its
// directory. Call it after the tests and before the leak check, as
// testenv.Main(m, pgtest.Stop) does; Start may start a new server after it.
func Stop() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s != nil {
		if err := shared.s.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	shared.s, shared.err = nil, nil
}

// NewServer starts a server of t's own; t.Cleanup stops it. If t fails, the
// server's log is logged.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := start(binDir(t))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postgres log:\n%s", s.Log())
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// binDir returns the bin directory of the newest PostgreSQL that Debian's
// packages installed (/usr/lib/postgresql/VERSION/bin), or skips t (fails
// it under CI=true) when there is none.
func binDir(t testing.TB) string {
	t.Helper()
	bin, err := newestBinDir("/usr/lib/postgresql")
	if err != nil {
		testenv.Missing(t, "PostgreSQL is not installed (Debian package postgresql; scripts/setup.sh installs it): "+err.Error())
	}
	return bin
}

// newestBinDir returns root/VERSION/bin of the highest numeric VERSION that
// has both initdb and postgres.
func newestBinDir(root string) (string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", err
	}
	best, bestDir := -1.0, ""
	for _, e := range entries {
		v, err := strconv.ParseFloat(e.Name(), 64) // "15", or "9.6" of old
		if err != nil || v <= best {
			continue
		}
		bin := filepath.Join(root, e.Name(), "bin")
		if isExecutable(filepath.Join(bin, "initdb")) && isExecutable(filepath.Join(bin, "postgres")) {
			best, bestDir = v, bin
		}
	}
	if bestDir == "" {
		return "", fmt.Errorf("no VERSION/bin with initdb and postgres in %s", root)
	}
	return bestDir, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// start runs initdb in a new temporary directory, starts postgres on a unix
// socket there and waits until it accepts connections. On error nothing is
// left running and the directory is removed.
func start(bin string) (_ *Server, err error) {
	// On tmpfs when there is one: creating a database copies its template
	// (about 8 MB), which takes 10-30 ms there but up to seconds on a busy
	// disk.
	dir, err := os.MkdirTemp(tmpfs, "pgtest-")
	if err != nil {
		if dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
			return nil, err
		}
	}
	s := &Server{dir: dir}
	defer func() {
		if err != nil {
			if s.cmd != nil {
				s.stop()
			}
			os.RemoveAll(dir)
		}
	}()
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user,
		// owner of the directory (MkdirTemp made it 0700, for root alone).
		u, err := user.Lookup(User)
		if err != nil {
			return nil, fmt.Errorf("running as root, and no user to run postgres as: %w", err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("user %s: %w", User, err)
		}
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	initdb := s.command(ctx, filepath.Join(bin, "initdb"),
		"--pgdata", s.dataDir(), "--username", User, "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C",
		"--no-sync", // a throw-away cluster: no need to wait for the disk
	)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	logf, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	s.cmd = s.command(context.Background(), filepath.Join(bin, "postgres"),
		"-D", s.dataDir(),
		"-k", s.dir, // unix socket directory
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=", // no TCP
		// A throw-away cluster: durability buys nothing. (Benchmarks
		// against it measure PostgreSQL without commit fsyncs.)
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// If the test binary dies without Stop (a panic, a timeout), the
	// server shuts down at once (SIGQUIT) rather than live on.
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)

	// Poll until it accepts connections: the socket appears before the
	// server is ready, so connect rather than look for it.
	deadline := time.Now().Add(readyTimeout)
	for {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(cctx, s.dsn("postgres"))
		ccancel()
		if err == nil {
			conn.Close(context.Background())
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("postgres exited during startup: %v\n%s", s.cmd.ProcessState, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres does not accept connections after %s: %v\n%s", readyTimeout, err, s.Log())
		}
	}
}

// command is an exec.Cmd of the server's user, in its directory, with a
// plain environment (no PG* variables of the caller's).
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "server.log") }

// SocketDir is the directory of the server's unix socket (the host of a
// DSN).
func (s *Server) SocketDir() string { return s.dir }

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile())
	return string(b)
}

// DSN returns the key=value connection string of database db as User.
func (s *Server) DSN(db string) string { return s.dsn(db) }

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		quote(s.dir), port, quote(User), quote(db))
}

// quote quotes v as a value of a key=value connection string.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// CreateDB creates a new, empty database for t and returns its DSN.
// t.Cleanup drops it unless the server was stopped: close every connection
// to it before then.
func (s *Server) CreateDB(t testing.TB) (dsn string) {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	if err := s.admin(t, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
			return // stopped: nothing to drop
		default:
		}
		// FORCE: a connection left open must not fail every later test.
		if err := s.admin(t, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.dsn(name)
}

// admin runs one statement on the postgres database.
func (s *Server) admin(t testing.TB, stmt string) error {
	ctx := t.Context()
	if ctx.Err() != nil { // in t.Cleanup, t.Context is already canceled
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// Stop stops the server (fast shutdown: SIGINT, which ends open sessions;
// SIGKILL if it has not exited after a while) and removes its directory. It
// may be called more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stopErr = s.stop()
		if err := os.RemoveAll(s.dir); err != nil && s.stopErr == nil {
			s.stopErr = err
		}
	})
	return s.stopErr
}

func (s *Server) stop() error {
	select {
	case <-s.exited:
		return fmt.Errorf("pgtest: postgres had exited (%v):\n%s", s.cmd.ProcessState, s.Log())
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("pgtest: stopping postgres: %w", err)
	}
	select {
	case <-s.exited:
		if !s.cmd.ProcessState.Success() {
			return fmt.Errorf("pgtest: postgres exited with %v:\n%s", s.cmd.ProcessState, s.Log())
		}
		return nil
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("pgtest: postgres did not stop in %s of SIGINT; killed:\n%s", stopTimeout, s.Log())
	}
}
