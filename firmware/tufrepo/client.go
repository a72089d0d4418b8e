package tufrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/internal/durable"
)

// ErrNoRelease: the repository's verified targets hold no release.
var ErrNoRelease = errors.New("no release published")

// Release is one release as the verified targets metadata describes it.
type Release struct {
	Version    release.Version // the release's version
	MinFrom    release.Version // the oldest running version that may update straight to it
	TargetPath string          // TUF target path, releases/<version>/bundle.tar
	Length     int64           // bundle size in bytes
	SHA256     string          // bundle SHA-256, lowercase hex
}

// Client is the box's side: it keeps the TUF metadata it has verified in a
// local directory and asks the repository what the newest release is.
// It is safe for concurrent use.
//
// Every Latest runs the whole TUF client workflow with go-tuf's updater:
// follow root rotations one version at a time (each signed by the previous
// root's threshold and its own), then timestamp, snapshot and targets, each
// checked for signatures and threshold, expiry and version rollback against
// what the local store already trusts. go-tuf writes a file to the local
// store only after it has verified it.
type Client struct {
	// HTTPClient fetches metadata. NewClient sets one with a 30 s timeout;
	// replace it (before the first Latest) for a proxy or a private CA.
	HTTPClient *http.Client

	dir         string
	rootJSON    []byte
	metadataURL string
	targetsURL  string
	now         func() time.Time // the clock expiry is checked against; tests move it

	mu      sync.Mutex
	trusted map[string]Release // releases in the last verified targets, by target path
}

// NewClient returns a client keeping its verified metadata in
// localMetadataDir (created 0700 if absent) and trusting trustedRootJSON,
// the root metadata shipped in the box's image, until the repository
// rotates it. metadataURL and targetsURL are where head office serves
// <repo>/metadata and <repo>/targets; they must be https, or http to a
// loopback address (tests).
func NewClient(localMetadataDir string, trustedRootJSON []byte, metadataURL, targetsURL string) (*Client, error) {
	for _, u := range []struct{ name, url string }{{"metadata URL", metadataURL}, {"targets URL", targetsURL}} {
		if err := checkURL(u.url); err != nil {
			return nil, fmt.Errorf("update client: %s: %w", u.name, err)
		}
	}
	if _, err := trustedmetadata.New(trustedRootJSON); err != nil {
		return nil, fmt.Errorf("update client: the trusted root metadata is not a valid, self-signed TUF root: %w", err)
	}
	if err := os.MkdirAll(localMetadataDir, 0o700); err != nil {
		return nil, fmt.Errorf("update client: %w", err)
	}
	return &Client{
		HTTPClient:  &http.Client{Timeout: 30 * time.Second},
		dir:         localMetadataDir,
		rootJSON:    bytes.Clone(trustedRootJSON),
		metadataURL: metadataURL,
		targetsURL:  targetsURL,
		now:         time.Now,
	}, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http":
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() || u.Hostname() == "localhost" {
			return nil
		}
		return fmt.Errorf("%q: plain http is only allowed to a loopback address; use https", s)
	default:
		return fmt.Errorf("%q: want an https URL", s)
	}
}

// Latest refreshes the metadata from the repository, verifying it, and
// returns the newest release it lists. Errors from verification wrap
// go-tuf's error types (metadata.ErrUnsignedMetadata,
// metadata.ErrExpiredMetadata, metadata.ErrBadVersionNumber,
// metadata.ErrLengthOrHashMismatch, metadata.ErrDownloadHTTP …); test them
// with errors.As. ErrNoRelease means the verified targets list no release.
//
// Whether the box may install the release (its MinFrom against the running
// version) is the caller's decision; Releases lists the others.
func (c *Client) Latest(ctx context.Context) (Release, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rels, err := c.refresh(ctx)
	if err != nil {
		return Release{}, fmt.Errorf("checking %s for updates: %w", c.metadataURL, err)
	}
	c.trusted = make(map[string]Release, len(rels))
	for _, r := range rels {
		c.trusted[r.TargetPath] = r
	}
	if len(rels) == 0 {
		return Release{}, fmt.Errorf("checking %s for updates: %w", c.metadataURL, ErrNoRelease)
	}
	return rels[len(rels)-1], nil
}

// Releases lists the releases in the metadata the last successful Latest
// verified, oldest first (for a box too old for the latest release's
// MinFrom to find an intermediate one).
func (c *Client) Releases() []Release {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Release, 0, len(c.trusted))
	for _, r := range c.trusted {
		out = append(out, r)
	}
	sortReleases(out)
	return out
}

// TargetURL is where the release's bundle is served: the targets URL plus
// the hash-prefixed name consistent snapshots use,
// releases/<version>/<sha256>.bundle.tar.
func (c *Client) TargetURL(r Release) string {
	dir, base := path.Split(r.TargetPath)
	u, err := url.JoinPath(c.targetsURL, dir, r.SHA256+"."+base)
	if err != nil { // the targets URL was parsed by NewClient
		return ""
	}
	return u
}

// VerifyTarget checks that the file at path is the release's bundle: its
// length and SHA-256 must be those the last successful Latest verified for
// r.TargetPath (r itself is not trusted). A mismatch wraps
// metadata.ErrLengthOrHashMismatch.
func (c *Client) VerifyTarget(r Release, path string) error {
	c.mu.Lock()
	want, ok := c.trusted[r.TargetPath]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("verifying %s: %s is not in the verified metadata; call Latest first", path, r.TargetPath)
	}
	if want != r {
		return fmt.Errorf("verifying %s: the release given (%+v) differs from the verified metadata (%+v)", path, r, want)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verifying %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verifying %s: %w", path, err)
	}
	if st.Size() != want.Length {
		return fmt.Errorf("verifying %s: %w", path, &metadata.ErrLengthOrHashMismatch{
			Msg: fmt.Sprintf("%s is %d bytes, the signed metadata says %d", r.TargetPath, st.Size(), want.Length)})
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, want.Length+1))
	if err != nil {
		return fmt.Errorf("verifying %s: %w", path, err)
	}
	if n != want.Length {
		return fmt.Errorf("verifying %s: %w", path, &metadata.ErrLengthOrHashMismatch{
			Msg: fmt.Sprintf("%s changed while it was read: %d bytes, the signed metadata says %d", r.TargetPath, n, want.Length)})
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("verifying %s: %w", path, &metadata.ErrLengthOrHashMismatch{
			Msg: fmt.Sprintf("%s has SHA-256 %s, the signed metadata says %s", r.TargetPath, got, want.SHA256)})
	}
	return nil
}

// refresh runs go-tuf's client workflow once and returns the releases in
// the verified top-level targets, oldest first.
func (c *Client) refresh(ctx context.Context) ([]Release, error) {
	cfg, err := config.New(c.metadataURL, c.startRoot())
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = c.dir
	cfg.LocalTargetsDir = c.dir // required by go-tuf; nothing is downloaded there
	cfg.RemoteTargetsURL = c.targetsURL
	cfg.PrefixTargetsWithHash = true
	cfg.Fetcher = &fetcher{ctx: ctx, client: c.HTTPClient}
	// An updater refreshes once; a new one per call reloads the local store,
	// which is what rollback protection compares against.
	up, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	up.UnsafeSetRefTime(c.now().UTC())
	err = up.Refresh()
	// go-tuf writes without fsync; make whatever it verified and stored
	// durable, failed refresh or not (a new root may have been stored).
	if serr := syncStore(c.dir); err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	return releases(up.GetTopLevelTargets())
}

// startRoot is the root to start the workflow from: the newest root the
// local store holds (go-tuf stored it after verifying it) unless it is
// missing, unreadable or older than the one in the image.
func (c *Client) startRoot() []byte {
	shipped, _ := trustedmetadata.New(c.rootJSON) // checked by NewClient
	local, err := os.ReadFile(filepath.Join(c.dir, "root.json"))
	if err != nil {
		return c.rootJSON
	}
	tm, err := trustedmetadata.New(local)
	if err != nil || tm.Root.Signed.Version < shipped.Root.Signed.Version {
		return c.rootJSON
	}
	return local
}

// syncStore fsyncs the local store's metadata files and the directory.
func syncStore(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := durable.SyncPath(name); err != nil {
			return fmt.Errorf("syncing %s: %w", name, err)
		}
	}
	return durable.SyncDir(dir)
}

// releases turns the verified targets under releases/ into Releases, oldest
// first. Other targets are ignored. A release target whose custom metadata
// is malformed or disagrees with its path is an error: it is signed, so it
// is head office's mistake and must be seen, not skipped.
func releases(targets map[string]*metadata.TargetFiles) ([]Release, error) {
	var out []Release
	for p, tf := range targets {
		if !strings.HasPrefix(p, "releases/") {
			continue
		}
		r, err := parseTarget(p, tf)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", p, err)
		}
		out = append(out, r)
	}
	sortReleases(out)
	return out, nil
}

func parseTarget(p string, tf *metadata.TargetFiles) (Release, error) {
	if tf.Custom == nil {
		return Release{}, errors.New("no custom metadata (version, min_from)")
	}
	// Fields other than version and min_from are ignored, so head office can
	// add some without breaking boxes already in the field.
	var c custom
	if err := json.Unmarshal(*tf.Custom, &c); err != nil {
		return Release{}, fmt.Errorf("custom metadata: %w", err)
	}
	v, err := release.ParseVersion(c.Version)
	if err != nil {
		return Release{}, fmt.Errorf("custom version: %w", err)
	}
	from, err := release.ParseVersion(c.MinFrom)
	if err != nil {
		return Release{}, fmt.Errorf("custom min_from: %w", err)
	}
	if v.Less(from) {
		return Release{}, fmt.Errorf("custom min_from %s is later than version %s", from, v)
	}
	if p != TargetPath(v) {
		return Release{}, fmt.Errorf("custom version %s does not match the path (want %s)", v, TargetPath(v))
	}
	sum := tf.Hashes["sha256"]
	if len(sum) != sha256.Size {
		return Release{}, errors.New("no sha256 hash")
	}
	if len(tf.Hashes) != 1 {
		// go-tuf names the file after whichever hash a map iteration yields
		// first; with one hash the name is certain.
		return Release{}, fmt.Errorf("%d hashes; want sha256 alone", len(tf.Hashes))
	}
	if tf.Length <= 0 {
		return Release{}, fmt.Errorf("length %d", tf.Length)
	}
	return Release{Version: v, MinFrom: from, TargetPath: p, Length: tf.Length, SHA256: hex.EncodeToString(sum)}, nil
}

func sortReleases(rs []Release) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Version.Less(rs[j].Version) })
}

// fetcher is go-tuf's Fetcher over the client's http.Client, bound to the
// context of one Latest call.
type fetcher struct {
	ctx    context.Context
	client *http.Client
}

// DownloadFile fetches urlPath, reading at most maxLength bytes. A status
// other than 200 is a metadata.ErrDownloadHTTP (go-tuf reads a 404 for the
// next root version as "no newer root"); a body that is too long is a
// metadata.ErrDownloadLengthMismatch.
func (f *fetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, urlPath, nil)
	if err != nil {
		return nil, err
	}
	// A cache between the box and head office must not serve a stale
	// timestamp.json: that would look like a freeze attack.
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: urlPath}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, more than %d", urlPath, resp.ContentLength, maxLength)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", urlPath, err)
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is more than %s bytes", urlPath, strconv.FormatInt(maxLength, 10))}
	}
	return data, nil
}
