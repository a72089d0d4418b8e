package updater_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/veil-edge/veil/firmware/agent"
	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/firmware/tufrepo"
	"github.com/veil-edge/veil/firmware/updater"
	"github.com/veil-edge/veil/models"
)

// The model a test release replaces: a file veil knows by name.
const modelFile = "face_detection_back_256x256_barracuda.onnx"

const modelName = "blazeface-back-256"

// repo is head office's repository, served over loopback HTTP.
type repo struct {
	t    *testing.T
	dir  string
	keys tufrepo.Keys
	srv  *httptest.Server
	gets atomic.Int32 // bundle requests
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRepo(t *testing.T) *repo {
	r := &repo{t: t, dir: t.TempDir()}
	r.keys = tufrepo.Keys{Root: []ed25519.PrivateKey{newKey(t)}, Targets: newKey(t), Snapshot: newKey(t), Timestamp: newKey(t)}
	if err := tufrepo.Init(r.dir, r.keys, 1, tufrepo.DefaultExpiries(time.Now())); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(r.dir))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/targets/") {
			r.gets.Add(1)
		}
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// publish builds a release whose veil and model hold the given bodies.
func (r *repo) publish(version, minFrom, veil, model string) {
	r.t.Helper()
	src := r.t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			r.t.Fatal(err)
		}
		return p
	}
	var buf bytes.Buffer
	m, err := release.Build(&buf, version, minFrom, map[string]string{
		"veil": write("veil", veil), "models/" + modelFile: write("model", model), "models/unknown.bin": write("unknown", "x"),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	bundle := write("bundle.tar", buf.String())
	if _, err := tufrepo.AddRelease(r.dir, bundle, m, r.keys, tufrepo.DefaultExpiries(time.Now())); err != nil {
		r.t.Fatal(err)
	}
}

// targetFile is the published bundle of version.
func (r *repo) targetFile(version string) string {
	r.t.Helper()
	m, _ := filepath.Glob(filepath.Join(r.dir, "targets", "releases", version, "*.bundle.tar"))
	if len(m) != 1 {
		r.t.Fatalf("bundle of %s: %v", version, m)
	}
	return m[0]
}

// newBox lays out an install root running factory release 1.0.0.
func newBox(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "veil")
	rel := filepath.Join(root, "releases", "1.0.0")
	os.MkdirAll(filepath.Join(rel, "models"), 0o755)
	os.WriteFile(filepath.Join(rel, "veil"), []byte("veil 1.0.0"), 0o755)
	os.Symlink("releases/1.0.0", filepath.Join(root, "current"))
	return root
}

func (r *repo) open(t *testing.T, root, running string, restarts *atomic.Int32) *updater.Updater {
	t.Helper()
	trusted, err := os.ReadFile(filepath.Join(r.dir, "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := updater.Open(updater.Options{
		Root: root, TrustedRoot: trusted, MetadataURL: r.srv.URL + "/metadata", TargetsURL: r.srv.URL + "/targets",
		Running: running, Restart: func(context.Context) error { restarts.Add(1); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func readLink(t *testing.T, root, name string) string {
	t.Helper()
	s, _ := os.Readlink(filepath.Join(root, name))
	return strings.TrimPrefix(s, "releases/")
}

// TestModelOnlyUpdate: a release with the same veil and a new model is
// installed, switched in and confirmed; the new model loads under the pin
// from the signed manifest, and a model altered afterwards is refused.
func TestModelOnlyUpdate(t *testing.T) {
	r := newRepo(t)
	r.publish("1.1.0", "1.0.0", "veil 1.0.0", "retrained weights")
	root := newBox(t)
	var restarts atomic.Int32
	u := r.open(t, root, "", &restarts)

	off, err := u.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !off.Available() || off.Next.Version.String() != "1.1.0" || off.Current != "1.0.0" {
		t.Fatalf("offer %+v", off)
	}
	if err := u.Apply(context.Background(), off.Next); err != nil {
		t.Fatal(err)
	}
	if got := readLink(t, root, "current"); got != "1.1.0" || restarts.Load() != 1 {
		t.Fatalf("current -> %s after %d restarts", got, restarts.Load())
	}
	dir := filepath.Join(root, "releases", "1.1.0")
	if _, err := os.Stat(filepath.Join(dir, "release.json")); err != nil {
		t.Errorf("release manifest not kept: %v", err)
	}
	b, _, err := models.Load(filepath.Join(dir, "models"), modelName)
	if err != nil || string(b) != "retrained weights" {
		t.Fatalf("loading the new model: %q, %v", b, err)
	}
	// The new release confirms itself after its restart.
	n := r.open(t, root, "1.1.0", &restarts)
	if ok, err := n.Agent().Confirm(context.Background(), func(context.Context, string) error { return nil }); !ok || err != nil {
		t.Fatalf("Confirm: %v %v", ok, err)
	}
	if st := n.Agent().Status(); st.Phase != agent.Committed || st.Highest != "1.1.0" {
		t.Errorf("journal %+v", st)
	}
	if off, err := n.Check(context.Background()); err != nil || off.Available() {
		t.Errorf("after the update: %+v, %v", off, err)
	}

	// A model changed on disk after the install is never loaded.
	os.WriteFile(filepath.Join(dir, "models", modelFile), []byte("retrained weightz"), 0o644)
	if _, _, err := models.Load(filepath.Join(dir, "models"), modelName); !errors.Is(err, models.ErrHashMismatch) {
		t.Errorf("tampered model: %v", err)
	}
}

// TestApplyRefuses: what the repository serves is checked before anything
// is staged, and a refused update leaves the running release alone.
func TestApplyRefuses(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, r *repo)
		wantErr string
	}{
		{
			name: "tampered bundle",
			setup: func(t *testing.T, r *repo) {
				r.publish("1.1.0", "1.0.0", "veil 1.1.0", "weights")
				p := r.targetFile("1.1.0")
				b, _ := os.ReadFile(p)
				b[len(b)/2] ^= 1
				os.WriteFile(p, b, 0o644)
			},
		},
		{
			name: "bundle swapped for another signed release",
			setup: func(t *testing.T, r *repo) {
				r.publish("1.1.0", "1.0.0", "veil 1.1.0", "weights")
				r.publish("1.2.0", "1.0.0", "veil 1.2.0", "weights")
				b, _ := os.ReadFile(r.targetFile("1.2.0"))
				os.WriteFile(r.targetFile("1.1.0"), b, 0o644)
				os.Remove(r.targetFile("1.2.0")) // so 1.1.0 is what is applied
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			tc.setup(t, r)
			root := newBox(t)
			var restarts atomic.Int32
			u := r.open(t, root, "", &restarts)
			if _, err := u.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			var rel tufrepo.Release
			for _, x := range u.Releases() {
				if x.Version.String() == "1.1.0" {
					rel = x
				}
			}
			err := u.Apply(context.Background(), rel)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			var mismatch *metadata.ErrLengthOrHashMismatch
			if !errors.As(err, &mismatch) && !errors.Is(err, agent.ErrCorrupt) {
				t.Errorf("err = %v, want a length or hash mismatch against the signed metadata", err)
			}
			if got := readLink(t, root, "current"); got != "1.0.0" || restarts.Load() != 0 {
				t.Errorf("current -> %s after %d restarts; the running release must stay", got, restarts.Load())
			}
			if _, err := os.Stat(filepath.Join(root, "releases", "1.1.0")); err == nil {
				t.Error("the refused release was installed")
			}
			if st := u.Agent().Status(); st.Phase != agent.Idle || st.LastError == "" {
				t.Errorf("journal %+v", st)
			}
		})
	}
}

// TestCheckPicks: which release Check offers.
func TestCheckPicks(t *testing.T) {
	cases := []struct {
		name    string
		publish [][2]string // version, min_from
		journal string      // state.json to start from, if any
		want    string      // "" = nothing to install
		wantWhy string
	}{
		{"nothing newer", [][2]string{{"1.0.0", "0.1.0"}}, "", "", "up to date (1.0.0)"},
		{"newest", [][2]string{{"1.1.0", "1.0.0"}, {"1.2.0", "1.0.0"}}, "", "1.2.0", "1.2.0 is newer than 1.0.0"},
		{"intermediate first", [][2]string{{"1.1.0", "1.0.0"}, {"2.0.0", "1.1.0"}}, "", "1.1.0", "1.1.0 first: the newest release 2.0.0 needs at least 1.1.0"},
		{"no path from here", [][2]string{{"2.0.0", "1.5.0"}}, "", "", "up to date (1.0.0)"},
		{"rolled back is not retried", [][2]string{{"1.1.0", "1.0.0"}},
			`{"state":"rolled-back","version":"1.1.0","from":"1.0.0","highest":"1.0.0","last_error":"health check of 1.1.0 failed: no frames"}`,
			"", "1.1.0 was rolled back (health check of 1.1.0 failed: no frames); waiting for a newer release"},
		{"a newer one after a rollback", [][2]string{{"1.1.0", "1.0.0"}, {"1.1.1", "1.0.0"}},
			`{"state":"rolled-back","version":"1.1.0","from":"1.0.0","highest":"1.0.0"}`, "1.1.1", "1.1.1 is newer than 1.0.0"},
		{"not below the highest ever committed", [][2]string{{"1.1.0", "1.0.0"}},
			`{"state":"rolled-back","version":"1.2.0","from":"1.0.0","highest":"1.2.0"}`, "", "up to date (1.0.0)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			for _, p := range tc.publish {
				r.publish(p[0], p[1], "veil "+p[0], "weights "+p[0])
			}
			root := newBox(t)
			if tc.journal != "" {
				os.WriteFile(filepath.Join(root, "state.json"), []byte(tc.journal), 0o644)
			}
			var restarts atomic.Int32
			u := r.open(t, root, "", &restarts)
			off, err := u.Check(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if off.Available() {
				got = off.Next.Version.String()
			}
			if got != tc.want || off.Reason != tc.wantWhy {
				t.Errorf("offer %q (%s), want %q (%s)", got, off.Reason, tc.want, tc.wantWhy)
			}
			if r.gets.Load() != 0 {
				t.Error("Check downloaded a bundle")
			}
		})
	}
}
