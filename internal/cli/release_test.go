package cli_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/firmware/tufrepo"
)

// TestReleaseCommands: head office makes keys, a repository and a release
// with veil release; a box's TUF client, trusting only the first root,
// finds the release over HTTP, and the bundle it downloads verifies and
// holds the binary and the models. A release signed with a key the root
// does not list is refused.
func TestReleaseCommands(t *testing.T) {
	dir := t.TempDir()
	key := func(n string) string { return filepath.Join(dir, "keys", n+".pem") }
	if out, err := veil(t, "release", "keygen", key("root1"), key("root2"), key("root3"), key("targets"), key("snapshot"), key("timestamp"), key("rogue")); err != nil || strings.Count(out, "key ") != 7 {
		t.Fatalf("keygen: %q, %v", out, err)
	}
	if _, err := veil(t, "release", "keygen", key("root1")); err == nil {
		t.Fatal("keygen overwrote a key")
	}
	repo := filepath.Join(dir, "repo")
	online := []string{"--targets-key", key("targets"), "--snapshot-key", key("snapshot"), "--timestamp-key", key("timestamp")}
	if _, err := veil(t, append([]string{"release", "init", "--repo", repo, "--threshold", "2", "--root-key", key("root1"), "--root-key", key("root2"), "--root-key", key("root3")}, online...)...); err != nil {
		t.Fatalf("init: %v", err)
	}
	bin := filepath.Join(dir, "veil")
	models := filepath.Join(dir, "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, s := range map[string]string{bin: "#!/bin/sh\necho veil 1.1.0\n", filepath.Join(models, "face.onnx"): "model bytes", filepath.Join(models, "manifest.json"): "{}"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	add := func(version, targetsKey string) (string, error) {
		return veil(t, "release", "add", "--repo", repo, "--version", version, "--min-from", "1.0.0", "--binary", bin, "--models", models,
			"--targets-key", targetsKey, "--snapshot-key", key("snapshot"), "--timestamp-key", key("timestamp"))
	}
	if out, err := add("1.1.0", key("targets")); err != nil || !strings.Contains(out, "release 1.1.0 (from 1.0.0 or later): 3 files") {
		t.Fatalf("add: %q, %v", out, err)
	}
	if _, err := add("1.2.0", key("rogue")); err == nil {
		t.Fatal("a release signed with a key the root does not list was published")
	}
	if out, err := veil(t, "release", "refresh", "--repo", repo, "--timestamp-key", key("timestamp")); err != nil || !strings.Contains(out, "valid until") {
		t.Fatalf("refresh: %q, %v", out, err)
	}

	// The box.
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	defer srv.Close()
	root, err := os.ReadFile(filepath.Join(repo, "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tufrepo.NewClient(filepath.Join(dir, "box-metadata"), root, srv.URL+"/metadata/", srv.URL+"/targets/")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := c.Latest(context.Background())
	if err != nil || rel.Version.String() != "1.1.0" {
		t.Fatalf("latest: %+v, %v", rel, err)
	}
	resp, err := http.Get(c.TargetURL(rel))
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle.tar")
	f, _ := os.Create(bundle)
	_, _ = io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	if err := c.VerifyTarget(rel, bundle); err != nil {
		t.Fatalf("verify: %v", err)
	}
	m, err := release.Extract(bundle, filepath.Join(dir, "installed"))
	if err != nil || len(m.Files) != 3 {
		t.Fatalf("extract: %+v, %v", m, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "installed", "models", "face.onnx")); string(got) != "model bytes" {
		t.Fatalf("installed model %q", got)
	}
}
