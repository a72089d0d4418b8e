package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVersionCompare(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.0.0", "1.0.1", -1},
		{"1.10.0", "1.9.0", 1},
		{"2.0.0", "10.0.0", -1},
		{"0.0.1", "0.0.0", 1},
	}
	for _, tc := range cases {
		got, err := compareVersions(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("compare(%s, %s) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "1", "1.2", "1.2.3.4", "v1.2.3", "1.02.3", "1.2.-3", "1.2.3-rc1", "../../x", "1..2", "99999999999999999999.0.0"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) accepted", bad)
		}
	}
}

func TestApplyHappyPath(t *testing.T) {
	root := newRoot(t, "0.8.0", "0.9.0", "1.0.0")
	var checked []string
	health := func(ctx context.Context, dir string) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("health check context has no deadline")
		}
		checked = append(checked, dir)
		return nil
	}
	a, restarts := open(t, root)
	if st := a.Status(); st.Phase != Idle || st.Version != "1.0.0" || st.Highest != "1.0.0" {
		t.Fatalf("first start: %+v", st)
	}

	steps := []struct {
		version, wantPrevious string
		wantReleases          []string
	}{
		{"1.1.0", "1.0.0", []string{"1.0.0", "1.1.0"}},
		{"2.0.0", "1.1.0", []string{"1.1.0", "2.0.0"}},
	}
	for i, s := range steps {
		var seen []string
		a.afterState = func(p string) { seen = append(seen, p) }
		if err := update(t, a, s.version, health); err != nil {
			t.Fatalf("update to %s: %v", s.version, err)
		}
		assertCurrent(t, root, s.version)
		if got := linkTarget(t, root, "previous"); got != s.wantPrevious {
			t.Errorf("previous -> %s, want %s", got, s.wantPrevious)
		}
		if got := releases(t, root); !slices.Equal(got, s.wantReleases) {
			t.Errorf("releases %v, want %v (older ones pruned)", got, s.wantReleases)
		}
		assertClean(t, root)
		st := journal(t, root)
		if st.Phase != Committed || st.Version != s.version || st.Highest != s.version || st.LastError != "" {
			t.Errorf("journal %+v", st)
		}
		if a.Status() != st {
			t.Errorf("Status %+v differs from the journal %+v", a.Status(), st)
		}
		want := []string{"downloading", "verified", "staged", "previous.new", "current.new", "switched", "health-checking", "committed"}
		if !slices.Equal(seen, want) {
			t.Errorf("went through %v, want %v", seen, want)
		}
		if got := int(restarts.n.Load()); got != i+1 {
			t.Errorf("%d restarts, want %d", got, i+1)
		}
		if checked[i] != filepath.Join(root, "releases", s.version) {
			t.Errorf("health checked %s", checked[i])
		}
	}

	// The journal has exactly the documented keys.
	data, _ := os.ReadFile(filepath.Join(root, "state.json"))
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"from", "highest", "last_error", "state", "updated", "version"}; !slices.Equal(keys, want) {
		t.Errorf("state.json keys %v, want %v", keys, want)
	}

	// A restart keeps the journal as it was.
	b, _ := open(t, root)
	if st := b.Status(); st.Phase != Committed || st.Highest != "2.0.0" {
		t.Errorf("after reopening: %+v", st)
	}
	assertCurrent(t, root, "2.0.0")
}

func TestApplyRefusesNotNewer(t *testing.T) {
	cases := []struct {
		name, version, highest string
		notNewer               bool
	}{
		{"equal to current", "1.0.0", "", true},
		{"lower than current", "0.9.5", "", true},
		{"above current but below highest", "1.5.0", "2.0.0", true},
		{"equal to highest", "2.0.0", "2.0.0", true},
		{"not a version", "latest", "", false},
		{"path traversal", "../../etc", "", false},
		{"leading zero", "1.01.0", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t, "0.9.0", "1.0.0")
			if tc.highest != "" {
				writeJournal(t, root, State{Phase: RolledBack, Version: tc.highest, From: "1.0.0", Highest: tc.highest})
			}
			a, _ := open(t, root)
			before, _ := os.ReadFile(filepath.Join(root, "state.json"))
			fetched := false
			fetch := func(context.Context, string) error { fetched = true; return nil }
			err := a.Apply(context.Background(), tc.version, fetch, installStub(tc.version))
			if err == nil || !strings.Contains(err.Error(), "refusing update") {
				t.Fatalf("err = %v, want a refusal", err)
			}
			if errors.Is(err, ErrNotNewer) != tc.notNewer {
				t.Errorf("errors.Is(err, ErrNotNewer) = %v: %v", !tc.notNewer, err)
			}
			if fetched {
				t.Error("fetch was called")
			}
			after, _ := os.ReadFile(filepath.Join(root, "state.json"))
			if string(before) != string(after) {
				t.Errorf("journal changed:\n%s\n%s", before, after)
			}
			assertClean(t, root)
			assertCurrent(t, root, "1.0.0")
			if got := releases(t, root); !slices.Equal(got, []string{"0.9.0", "1.0.0"}) {
				t.Errorf("releases %v", got)
			}
		})
	}
}

func TestApplyFailures(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name          string
		fetch         func(context.Context, string) error
		install       func(string, string) error
		health        func(context.Context, string) error
		restartFails  bool
		wantErr       []string
		rolledBack    bool
		wantRestarts  int32
		wantLastError string
	}{
		{
			name:          "health check fails",
			health:        func(context.Context, string) error { return boom },
			wantErr:       []string{"update to 2.0.0 was rolled back to 1.0.0", "health check of 2.0.0 failed", "boom"},
			rolledBack:    true,
			wantRestarts:  2,
			wantLastError: "health check of 2.0.0 failed: boom",
		},
		{
			name: "health check times out",
			health: func(ctx context.Context, _ string) error {
				<-ctx.Done()
				return ctx.Err()
			},
			wantErr:       []string{"was rolled back to 1.0.0", "deadline exceeded"},
			rolledBack:    true,
			wantRestarts:  2,
			wantLastError: "health check of 2.0.0 failed: context deadline exceeded",
		},
		{
			name:          "restart on the new release fails",
			restartFails:  true,
			wantErr:       []string{"was rolled back to 1.0.0", "restarting veil on the new release failed"},
			rolledBack:    true,
			wantRestarts:  2,
			wantLastError: "restarting veil on the new release failed: boom",
		},
		{
			name:          "fetch fails",
			fetch:         func(context.Context, string) error { return boom },
			wantErr:       []string{"failed while downloading", "nothing was switched, 1.0.0 is still current", "boom"},
			wantLastError: "update to 2.0.0 failed while downloading: fetching the bundle: boom",
		},
		{
			name:          "install fails",
			install:       func(string, string) error { return boom },
			wantErr:       []string{"failed while verified", "installing the bundle: boom"},
			wantLastError: "update to 2.0.0 failed while verified: installing the bundle: boom",
		},
		{
			name: "bundle without veil",
			install: func(_, dest string) error {
				return os.MkdirAll(filepath.Join(dest, "models"), 0o755)
			},
			wantErr: []string{"has no veil executable"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t, "0.9.0", "1.0.0")
			health := tc.health
			if health == nil {
				health = healthy
			}
			var restarts counter
			restart := func(ctx context.Context) error {
				if restarts.n.Add(1) == 1 && tc.restartFails {
					return boom
				}
				return nil
			}
			a, err := Open(Options{Root: root, HealthTimeout: 200 * time.Millisecond, Restart: restart})
			if err != nil {
				t.Fatal(err)
			}
			fetch, install := tc.fetch, tc.install
			if fetch == nil {
				fetch = fetchStub("2.0.0")
			}
			if install == nil {
				install = installStub("2.0.0")
			}
			err = a.Apply(context.Background(), "2.0.0", fetch, install)
			if err == nil {
				// The restarted process, running 2.0.0, checks itself.
				b, oerr := Open(Options{Root: root, Running: "2.0.0", HealthTimeout: 200 * time.Millisecond, Restart: restart})
				if oerr != nil {
					t.Fatal(oerr)
				}
				_, err = b.Confirm(context.Background(), health)
			}
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			if errors.Is(err, ErrRolledBack) != tc.rolledBack {
				t.Errorf("errors.Is(err, ErrRolledBack) = %v, want %v", !tc.rolledBack, tc.rolledBack)
			}
			assertCurrent(t, root, "1.0.0")
			assertClean(t, root)
			if got := releases(t, root); !slices.Equal(got, []string{"0.9.0", "1.0.0"}) {
				t.Errorf("releases %v: the failed 2.0.0 should be gone", got)
			}
			st := journal(t, root)
			wantPhase := Idle
			if tc.rolledBack {
				wantPhase = RolledBack
			}
			if st.Phase != wantPhase || st.Highest != "1.0.0" {
				t.Errorf("journal %+v, want state %s with highest 1.0.0", st, wantPhase)
			}
			if tc.wantLastError != "" && st.LastError != tc.wantLastError {
				t.Errorf("last_error %q, want %q", st.LastError, tc.wantLastError)
			}
			if got := restarts.n.Load(); got != tc.wantRestarts {
				t.Errorf("%d restarts, want %d", got, tc.wantRestarts)
			}

			// The same version may be tried again, since it was never
			// committed, and this time it works.
			if err := update(t, a, "2.0.0", healthy); err != nil {
				t.Fatalf("retry: %v", err)
			}
			assertCurrent(t, root, "2.0.0")
		})
	}
}

func TestApplyKeepsPartialBundleForResume(t *testing.T) {
	root := newRoot(t, "1.0.0")
	a, _ := open(t, root)
	var sizes []int64
	fetch := func(_ context.Context, dst string) error {
		if fi, err := os.Stat(dst); err == nil {
			sizes = append(sizes, fi.Size())
		} else {
			sizes = append(sizes, -1)
		}
		if len(sizes) == 1 {
			os.WriteFile(dst, []byte("bun"), 0o644)
			return errors.New("connection reset")
		}
		return fetchStub("2.0.0")(context.Background(), dst)
	}
	if err := a.Apply(context.Background(), "2.0.0", fetch, installStub("2.0.0")); err == nil {
		t.Fatal("first attempt succeeded")
	}
	if err := a.Apply(context.Background(), "2.0.0", fetch, installStub("2.0.0")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int64{-1, 3}) {
		t.Errorf("fetch saw bundle sizes %v, want [-1 3] (the partial kept for resuming)", sizes)
	}
	assertClean(t, root)
}

func TestRollback(t *testing.T) {
	root := newRoot(t, "1.0.0")
	a, restarts := open(t, root)
	if err := a.Rollback(context.Background()); err == nil || !strings.Contains(err.Error(), "no previous release") {
		t.Fatalf("rollback without previous: %v", err)
	}
	if err := update(t, a, "2.0.0", healthy); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertCurrent(t, root, "1.0.0")
	st := journal(t, root)
	if st.Phase != RolledBack || st.Version != "2.0.0" || st.From != "1.0.0" || st.Highest != "2.0.0" {
		t.Errorf("journal %+v", st)
	}
	if restarts.n.Load() != 2 {
		t.Errorf("%d restarts, want 2", restarts.n.Load())
	}
	if err := a.Rollback(context.Background()); err == nil || !strings.Contains(err.Error(), "already current") {
		t.Errorf("second rollback: %v", err)
	}
	// Rollback protection still holds after a manual rollback.
	if err := a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0")); !errors.Is(err, ErrNotNewer) {
		t.Errorf("re-applying 2.0.0: %v", err)
	}
	if err := update(t, a, "2.0.1", healthy); err != nil {
		t.Fatal(err)
	}
	assertCurrent(t, root, "2.0.1")
	if got := releases(t, root); !slices.Equal(got, []string{"1.0.0", "2.0.1"}) {
		t.Errorf("releases %v", got)
	}

	// An incomplete previous is refused.
	os.Remove(filepath.Join(root, "releases", "1.0.0", "veil"))
	if err := a.Rollback(context.Background()); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("rollback to an incomplete release: %v", err)
	}
	assertCurrent(t, root, "2.0.1")
}

func TestRecoverRepairsCurrent(t *testing.T) {
	cases := []struct {
		name        string
		versions    []string
		journal     *State
		prepare     func(t *testing.T, root string)
		wantCurrent string // "" means no current at all
		wantPhase   Phase
	}{
		{
			name:     "dangling current after its release vanished",
			versions: []string{"1.0.0", "2.0.0"},
			journal:  &State{Phase: Committed, Version: "2.0.0", From: "1.0.0", Highest: "2.0.0"},
			prepare: func(t *testing.T, root string) {
				os.RemoveAll(filepath.Join(root, "releases", "2.0.0"))
			},
			wantCurrent: "1.0.0",
			wantPhase:   Committed,
		},
		{
			name:     "current points at an incomplete release",
			versions: []string{"1.0.0", "2.0.0"},
			journal:  &State{Phase: Committed, Version: "2.0.0", From: "1.0.0", Highest: "2.0.0"},
			prepare: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "releases", "2.0.0", "veil"))
			},
			wantCurrent: "1.0.0",
			wantPhase:   Committed,
		},
		{
			name:     "current missing, dangling current.new left, half-moved release",
			versions: []string{"1.0.0", "2.0.0"},
			journal:  &State{Phase: Staged, Version: "2.0.0", From: "1.0.0", Highest: "1.0.0"},
			prepare: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "current"))
				os.Remove(filepath.Join(root, "previous"))
				os.Symlink("releases/3.0.0", filepath.Join(root, "current.new"))
				os.WriteFile(filepath.Join(root, ".tmp-state.json-123"), []byte("{"), 0o644)
				os.MkdirAll(filepath.Join(root, "staging", "2.0.0.dir", "models"), 0o755)
			},
			wantCurrent: "1.0.0",
			wantPhase:   Idle,
		},
		{
			name:     "current missing in a committed journal",
			versions: []string{"1.0.0", "2.0.0"},
			journal:  &State{Phase: Committed, Version: "2.0.0", From: "1.0.0", Highest: "2.0.0"},
			prepare: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "current"))
			},
			wantCurrent: "2.0.0",
			wantPhase:   Committed,
		},
		{
			name:     "factory image without current or journal",
			versions: []string{"1.0.0", "1.2.0"},
			prepare: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "current"))
				os.Remove(filepath.Join(root, "previous"))
			},
			wantCurrent: "1.2.0",
			wantPhase:   Idle,
		},
		{
			name:      "empty root",
			wantPhase: Idle,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t, tc.versions...)
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.journal != nil {
				writeJournal(t, root, *tc.journal)
			}
			if tc.prepare != nil {
				tc.prepare(t, root)
			}
			a, restarts := open(t, root)
			if tc.wantCurrent == "" {
				if _, err := os.Lstat(filepath.Join(root, "current")); err == nil {
					t.Error("current exists")
				}
			} else {
				assertCurrent(t, root, tc.wantCurrent)
				if restarts.n.Load() != 1 {
					t.Errorf("%d restarts after repairing current, want 1", restarts.n.Load())
				}
			}
			assertClean(t, root)
			if st := a.Status(); st.Phase != tc.wantPhase {
				t.Errorf("state %+v, want %s", st, tc.wantPhase)
			}
		})
	}
}

func TestOpenRefusesBadJournal(t *testing.T) {
	cases := map[string]string{
		"not json":         "{",
		"unknown state":    `{"state":"dancing"}`,
		"version not safe": `{"state":"staged","version":"../../bin"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			root := newRoot(t, "1.0.0")
			os.WriteFile(filepath.Join(root, "state.json"), []byte(body), 0o644)
			_, err := Open(Options{Root: root})
			if err == nil || !strings.Contains(err.Error(), "move it aside") {
				t.Fatalf("err = %v", err)
			}
			assertCurrent(t, root, "1.0.0")
		})
	}
}
