package durable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	for _, data := range []string{"first", "second, longer"} {
		if err := WriteFile(dir, "state.json", ".tmp-", []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := WriteFile(filepath.Join(dir, "missing"), "x", ".tmp-", nil); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("sync of a missing directory succeeded")
	}
}

func TestWriteFileMode(t *testing.T) {
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o640, 0o644} {
		if err := WriteFileMode(dir, "veil.yaml", ".tmp-", []byte("site: {}\n"), perm, -1); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(dir, "veil.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("mode %v; want %v", st.Mode().Perm(), perm)
		}
	}
	if err := WriteFileMode(dir, "x", ".tmp-", nil, 0o640, os.Getgid()); err != nil {
		t.Fatalf("own group: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}
