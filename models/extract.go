package models

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// errUnsafeArchive is wrapped by extract errors about a hostile or malformed archive.
var errUnsafeArchive = errors.New("unsafe archive")

// safeArchivePath reports whether name is a clean, relative, slash-separated
// path that stays inside the directory it would be extracted to.
func safeArchivePath(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
		return false
	}
	if len(name) >= 2 && name[1] == ':' { // C:foo, a Windows drive
		return false
	}
	for _, part := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// extractGzipTar reads a gzip-compressed tar archive and returns the contents
// of exactly the regular files named in want (archive path -> largest size
// allowed). Nothing is written to disk.
//
// The archive is treated as hostile: any entry whose name (or link target)
// would escape the extraction directory fails the whole extraction, as do a
// wanted path that is not a regular file, appears twice, is larger than its
// cap, or is absent.
func extractGzipTar(r io.Reader, want map[string]int64) (map[string][]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	got := make(map[string][]byte, len(want))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if !safeArchivePath(name) {
			return nil, fmt.Errorf("%w: entry %q escapes the extraction directory", errUnsafeArchive, hdr.Name)
		}
		if hdr.Linkname != "" && !linkStaysInside(name, hdr.Linkname, hdr.Typeflag == tar.TypeLink) {
			return nil, fmt.Errorf("%w: link %q -> %q escapes the extraction directory", errUnsafeArchive, hdr.Name, hdr.Linkname)
		}
		limit, wanted := want[name]
		if !wanted {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: %q is not a regular file (type %q)", errUnsafeArchive, name, hdr.Typeflag)
		}
		if _, dup := got[name]; dup {
			return nil, fmt.Errorf("%w: %q appears twice", errUnsafeArchive, name)
		}
		if hdr.Size < 0 || hdr.Size > limit {
			return nil, fmt.Errorf("%w: %q is %d bytes, cap %d", errUnsafeArchive, name, hdr.Size, limit)
		}
		b, err := readCapped(tr, limit)
		if err != nil {
			return nil, fmt.Errorf("tar: %q: %w", name, err)
		}
		got[name] = b
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			return nil, fmt.Errorf("%q not in the archive", name)
		}
	}
	return got, nil
}

// linkStaysInside reports whether a link target stays inside the extraction
// directory: a hard link's target is relative to the archive root, a symbolic
// link's to the directory holding name.
func linkStaysInside(name, target string, hard bool) bool {
	if strings.HasPrefix(target, "/") || strings.ContainsAny(target, "\\\x00") {
		return false
	}
	base := path.Dir(name)
	if hard {
		base = "."
	}
	resolved := path.Join(base, target)
	return resolved != ".." && !strings.HasPrefix(resolved, "../")
}
