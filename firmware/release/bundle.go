package release

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/veil-edge/veil/internal/durable"
)

// MaxFileSize is the largest file a bundle may hold.
const MaxFileSize = 1 << 30

// BinaryName is the bundle path of the veil binary, the one file extracted
// executable.
const BinaryName = "veil"

// bundleTime is every entry's modification time, so that the same inputs
// always give the same bundle bytes.
var bundleTime = time.Unix(0, 0).UTC()

// Sentinel errors. Extract and Verify wrap them with the entry involved.
var (
	// ErrUnsafeEntry: the bundle holds an entry that is not one of the
	// manifest's regular files (an extra file, a duplicate, a link, a
	// device, a directory, a path leaving the destination, an oversized or
	// sparse file).
	ErrUnsafeEntry = errors.New("unsafe bundle entry")
	// ErrHashMismatch: a file's SHA-256 is not the one the manifest pins.
	ErrHashMismatch = errors.New("bundle file SHA-256 mismatch")
	// ErrMissingFile: the manifest lists a file the bundle does not hold.
	ErrMissingFile = errors.New("bundle file missing")
	// ErrNoManifest: the bundle does not start with manifest.json.
	ErrNoManifest = errors.New("bundle does not start with manifest.json")
)

// fileMode is the permission a bundle path is written and extracted with.
func fileMode(p string) fs.FileMode {
	if p == BinaryName {
		return 0o755
	}
	return 0o644
}

// Build writes a bundle to w: manifest.json, then the files in path order.
// files maps each path inside the bundle to the file on disk holding it.
// The output depends only on the version, minFrom and the files' contents:
// entries are sorted, owned by 0:0 with no names, dated 1970-01-01, mode
// 0755 for "veil" and 0644 for everything else.
//
// Each file is hashed once to write the manifest and again while it is
// copied into the bundle; a file that changes in between fails the build.
func Build(w io.Writer, version, minFrom string, files map[string]string) (Manifest, error) {
	m := Manifest{Version: version, MinFrom: minFrom, Files: make(map[string]string, len(files))}
	sizes := make(map[string]int64, len(files))
	for _, p := range sortedPaths(files) {
		if err := checkPath(p); err != nil {
			return Manifest{}, fmt.Errorf("building bundle: %w", err)
		}
		sum, size, err := hashFile(files[p])
		if err != nil {
			return Manifest{}, fmt.Errorf("building bundle: %s: %w", p, err)
		}
		m.Files[p], sizes[p] = sum, size
	}
	mb, err := m.Marshal()
	if err != nil {
		return Manifest{}, fmt.Errorf("building bundle: %w", err)
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(header(ManifestName, int64(len(mb)))); err != nil {
		return Manifest{}, fmt.Errorf("building bundle: %w", err)
	}
	if _, err := tw.Write(mb); err != nil {
		return Manifest{}, fmt.Errorf("building bundle: %w", err)
	}
	for _, p := range sortedPaths(m.Files) {
		if err := copyInto(tw, p, files[p], sizes[p], m.Files[p]); err != nil {
			return Manifest{}, fmt.Errorf("building bundle: %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("building bundle: %w", err)
	}
	return m, nil
}

func header(name string, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     int64(fileMode(name)),
		ModTime:  bundleTime,
		Format:   tar.FormatPAX, // long paths allowed; nothing time-dependent is added
	}
}

// hashFile returns the SHA-256 and size of the regular file at name.
func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !st.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size() > MaxFileSize {
		return "", 0, fmt.Errorf("%s is %d bytes, more than %d", name, st.Size(), MaxFileSize)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// copyInto writes the file at name as bundle entry p, checking that it still
// has the size and hash the manifest was written with.
func copyInto(tw *tar.Writer, p, name string, size int64, sum string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(header(p, size)); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(tw, h), f, size); err != nil {
		return fmt.Errorf("%s changed while the bundle was built: %w", name, err)
	}
	if n, _ := f.Read(make([]byte, 1)); n != 0 || hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("%s changed while the bundle was built", name)
	}
	return nil
}

// Verify reads the bundle at bundlePath and checks it exactly as Extract
// does, without writing anything, and returns its manifest.
func Verify(bundlePath string) (Manifest, error) {
	discard := func(string) (io.Writer, func() error, error) {
		return io.Discard, func() error { return nil }, nil
	}
	m, err := walk(bundlePath, discard)
	if err != nil {
		return Manifest{}, fmt.Errorf("verifying bundle %s: %w", bundlePath, err)
	}
	return m, nil
}

// Extract unpacks the bundle at bundlePath into destDir and returns its
// manifest. destDir must be absent or empty; it is created 0755 (with any
// missing parents).
//
// The bundle is treated as hostile. It must start with manifest.json, then
// hold exactly the files the manifest lists, each once, as regular files of
// at most MaxFileSize (not sparse); any other entry (an extra file, a link, a
// device, a directory, a path leaving destDir) fails the extraction. Every
// file is hashed as it is written (files 0644, "veil" 0755) and must match
// its pin. Each file is fsynced once written, and every directory once all
// are, before Extract returns.
//
// On any failure Extract removes everything it wrote, and destDir itself if
// it created it. All writes go through an os.Root on destDir, so nothing is
// ever written outside it, even through a link planted in destDir.
func Extract(bundlePath, destDir string) (m Manifest, err error) {
	created, err := prepareDest(destDir)
	if err != nil {
		return Manifest{}, fmt.Errorf("extracting %s: %w", bundlePath, err)
	}
	root, err := os.OpenRoot(destDir)
	if err != nil {
		return Manifest{}, fmt.Errorf("extracting %s: %w", bundlePath, err)
	}
	defer root.Close()

	var (
		top  = map[string]bool{} // top-level names written, for clean-up
		dirs = map[string]bool{} // directories created, to fsync
		open *os.File            // the file being written, if any
	)
	defer func() {
		if open != nil {
			open.Close()
		}
		if err == nil {
			return
		}
		for name := range top {
			_ = root.RemoveAll(name)
		}
		if created {
			_ = os.Remove(destDir)
		}
		m = Manifest{}
		err = fmt.Errorf("extracting %s into %s: %w", bundlePath, destDir, err)
	}()

	create := func(p string) (io.Writer, func() error, error) {
		top[strings.SplitN(p, "/", 2)[0]] = true
		if d := path.Dir(p); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return nil, nil, err
			}
			for ; d != "." && !dirs[d]; d = path.Dir(d) {
				if err := root.Chmod(d, 0o755); err != nil { // whatever the umask
					return nil, nil, err
				}
				dirs[d] = true
			}
		}
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode(p))
		if err != nil {
			return nil, nil, err
		}
		open = f
		if err := f.Chmod(fileMode(p)); err != nil { // whatever the umask
			return nil, nil, err
		}
		commit := func() error {
			err := durable.SyncClose(f)
			open = nil
			if err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
			return nil
		}
		return f, commit, nil
	}

	if m, err = walk(bundlePath, create); err != nil {
		return Manifest{}, err
	}
	for d := range dirs {
		if err := syncRootDir(root, d); err != nil {
			return Manifest{}, err
		}
	}
	if err := syncRootDir(root, "."); err != nil {
		return Manifest{}, err
	}
	if created {
		if err := durable.SyncDir(filepath.Dir(filepath.Clean(destDir))); err != nil {
			return Manifest{}, err
		}
	}
	return m, nil
}

// prepareDest makes sure destDir is an empty directory, creating it if it is
// absent, and reports whether it did.
func prepareDest(destDir string) (bool, error) {
	st, err := os.Stat(destDir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(destDir, 0o755); err != nil {
			return false, err
		}
		if err := os.Chmod(destDir, 0o755); err != nil { // whatever the umask
			_ = os.Remove(destDir)
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return false, fmt.Errorf("%s is not a directory", destDir)
	}
	d, err := os.Open(destDir)
	if err != nil {
		return false, err
	}
	defer d.Close()
	if names, _ := d.Readdirnames(1); len(names) > 0 {
		return false, fmt.Errorf("%s is not empty (holds %q); extract into a new directory", destDir, names[0])
	}
	return false, nil
}

func syncRootDir(root *os.Root, name string) error {
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	if err := durable.SyncClose(d); err != nil {
		return fmt.Errorf("syncing directory %s: %w", name, err)
	}
	return nil
}

// walk reads the bundle, checks every entry and copies each listed file into
// the writer create returns for it, calling the returned commit once the
// file's hash has matched. It returns the manifest once every listed file has
// been seen with its pinned hash.
func walk(bundlePath string, create func(p string) (w io.Writer, commit func() error, err error)) (Manifest, error) {
	f, err := os.Open(bundlePath)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Manifest{}, err
	}
	// An uncompressed tar holds no more file bytes than its own size; the
	// running total is checked against it as a second guard against
	// anything that expands (sparse entries are refused outright).
	budget := st.Size()

	tr := tar.NewReader(f)
	hdr, err := tr.Next()
	if err == io.EOF {
		return Manifest{}, fmt.Errorf("%w: the bundle is empty", ErrNoManifest)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("reading tar: %w", err)
	}
	if hdr.Name != ManifestName {
		return Manifest{}, fmt.Errorf("%w: first entry is %q", ErrNoManifest, hdr.Name)
	}
	if err := checkEntry(hdr, maxManifestSize); err != nil {
		return Manifest{}, err
	}
	mb, err := io.ReadAll(io.LimitReader(tr, maxManifestSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("reading %s: %w", ManifestName, err)
	}
	m, err := ParseManifest(mb)
	if err != nil {
		return Manifest{}, err
	}
	budget -= int64(len(mb))

	seen := make(map[string]bool, len(m.Files))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("reading tar: %w", err)
		}
		want, listed := m.Files[hdr.Name]
		switch {
		case !listed:
			return Manifest{}, fmt.Errorf("%w: %q is not listed in the manifest", ErrUnsafeEntry, hdr.Name)
		case seen[hdr.Name]:
			return Manifest{}, fmt.Errorf("%w: %q appears twice", ErrUnsafeEntry, hdr.Name)
		}
		seen[hdr.Name] = true
		if err := checkEntry(hdr, MaxFileSize); err != nil {
			return Manifest{}, err
		}
		if budget -= hdr.Size; budget < 0 {
			return Manifest{}, fmt.Errorf("%w: %q: the entries hold more bytes than the bundle", ErrUnsafeEntry, hdr.Name)
		}
		w, commit, err := create(hdr.Name)
		if err != nil {
			return Manifest{}, fmt.Errorf("writing %s: %w", hdr.Name, err)
		}
		if err := copyChecked(w, tr, hdr.Name, hdr.Size, want); err != nil {
			return Manifest{}, err
		}
		if err := commit(); err != nil {
			return Manifest{}, err
		}
	}
	for _, p := range sortedPaths(m.Files) {
		if !seen[p] {
			return Manifest{}, fmt.Errorf("%w: %q is listed in the manifest but not in the bundle", ErrMissingFile, p)
		}
	}
	return m, nil
}

// checkEntry accepts a plain regular file of at most limit bytes. Names are
// checked by the caller against the manifest, whose paths are safe.
func checkEntry(hdr *tar.Header, limit int64) error {
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%w: %q is %s, not a regular file", ErrUnsafeEntry, hdr.Name, typeName(hdr.Typeflag))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("%w: %q is a sparse file", ErrUnsafeEntry, hdr.Name)
		}
	}
	if hdr.Size < 0 || hdr.Size > limit {
		return fmt.Errorf("%w: %q is %d bytes, more than %d", ErrUnsafeEntry, hdr.Name, hdr.Size, limit)
	}
	return nil
}

// copyChecked copies exactly size bytes of entry p from r to w, hashing
// them, and fails unless the hash is want.
func copyChecked(w io.Writer, r io.Reader, p string, size int64, want string) error {
	var h hash.Hash = sha256.New()
	if _, err := io.CopyN(io.MultiWriter(w, h), r, size); err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%w: %q has SHA-256 %s, the manifest pins %s", ErrHashMismatch, p, got, want)
	}
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "a symbolic link"
	case tar.TypeLink:
		return "a hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "a device"
	case tar.TypeDir:
		return "a directory"
	case tar.TypeFifo:
		return "a FIFO"
	default:
		return fmt.Sprintf("tar type %q", t)
	}
}
