package models

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

type tarEntry struct {
	name, link string
	typ        byte
	body       []byte
}

func makeTgz(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractGzipTar(t *testing.T) {
	model := []byte("onnx bytes")
	tgz := makeTgz(t,
		tarEntry{name: "package/", typ: tar.TypeDir},
		tarEntry{name: "package/README.md", body: []byte("readme")},
		tarEntry{name: "package/ONNX/m.onnx", body: model},
		tarEntry{name: "package/link", typ: tar.TypeSymlink, link: "ONNX/m.onnx"},
	)
	got, err := extractGzipTar(bytes.NewReader(tgz), map[string]int64{"package/ONNX/m.onnx": int64(len(model))})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got["package/ONNX/m.onnx"], model) {
		t.Fatalf("extracted %v", got)
	}
}

func TestExtractRejects(t *testing.T) {
	want := map[string]int64{"package/m.onnx": 100}
	good := tarEntry{name: "package/m.onnx", body: []byte("model")}
	for name, tc := range map[string]struct {
		entries []tarEntry
		unsafe  bool // must wrap errUnsafeArchive
	}{
		"dot-dot traversal":      {[]tarEntry{good, {name: "package/../../../etc/cron.d/x", body: []byte("evil")}}, true},
		"leading dot-dot":        {[]tarEntry{{name: "../m.onnx", body: []byte("evil")}, good}, true},
		"absolute path":          {[]tarEntry{{name: "/etc/passwd", body: []byte("evil")}, good}, true},
		"backslash traversal":    {[]tarEntry{{name: `package\..\..\x`, body: []byte("evil")}, good}, true},
		"symlink out":            {[]tarEntry{{name: "package/l", typ: tar.TypeSymlink, link: "../../etc/passwd"}, good}, true},
		"absolute symlink":       {[]tarEntry{{name: "package/l", typ: tar.TypeSymlink, link: "/etc/passwd"}, good}, true},
		"hard link out":          {[]tarEntry{{name: "package/h", typ: tar.TypeLink, link: "../x"}, good}, true},
		"wanted path is symlink": {[]tarEntry{{name: "package/m.onnx", typ: tar.TypeSymlink, link: "other"}}, true},
		"duplicate":              {[]tarEntry{good, good}, true},
		"over size cap":          {[]tarEntry{{name: "package/m.onnx", body: bytes.Repeat([]byte("x"), 101)}}, true},
		"absent":                 {[]tarEntry{{name: "package/other", body: []byte("x")}}, false},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := extractGzipTar(bytes.NewReader(makeTgz(t, tc.entries...)), want)
			if err == nil || got != nil {
				t.Fatalf("accepted: %v", got)
			}
			if tc.unsafe != errors.Is(err, errUnsafeArchive) {
				t.Fatalf("errors.Is(errUnsafeArchive) = %v: %v", !tc.unsafe, err)
			}
		})
	}
	if _, err := extractGzipTar(strings.NewReader("not gzip"), want); err == nil {
		t.Fatal("accepted non-gzip input")
	}
}

func TestSafeArchivePath(t *testing.T) {
	for p, ok := range map[string]bool{
		"package/ONNX/a.onnx": true, "package/": true, "a": true,
		"": false, "/a": false, "../a": false, "a/../b": false, "a/./b": false, "a//b": false,
		`a\b`: false, "C:a": false, "a\x00b": false, "..": false, ".": false,
	} {
		if safeArchivePath(p) != ok {
			t.Errorf("safeArchivePath(%q) = %v, want %v", p, !ok, ok)
		}
	}
}
