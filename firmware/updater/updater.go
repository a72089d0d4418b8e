// Package updater is the box's update client: it asks head office's TUF
// repository (firmware/tufrepo) for the newest release it may install,
// downloads the bundle resumably, checks it against the signed metadata
// before anything is staged, and hands it to the install agent
// (firmware/agent), which unpacks it checking every file against the
// bundle's manifest, switches it in and restarts veil. The new release
// confirms its own health (agent.Confirm).
//
// Model-only releases take the same path: a release whose veil is unchanged
// and whose models differ. The models' pins from the release manifest are
// written beside them (models.PinsFile), so the new models load and a
// model whose bytes do not match its pin is never loaded.
package updater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"path/filepath"
	"time"

	"github.com/veil-edge/veil/firmware/agent"
	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/firmware/tufrepo"
	"github.com/veil-edge/veil/internal/durable"
	"github.com/veil-edge/veil/models"
)

// Options configure an Updater.
type Options struct {
	Root          string // install root, for example /opt/veil
	TrustedRoot   []byte // TUF root metadata shipped with the box: the start of trust
	MetadataURL   string // head office's repository metadata
	TargetsURL    string // and its targets
	HealthTimeout time.Duration
	// Running is the release this process runs ("" for a tool); see
	// agent.RunningVersion.
	Running string
	// Restart makes the release current points at run; see agent.Options.
	Restart func(ctx context.Context) error
	Log     *slog.Logger
	// HTTPClient downloads bundles; nil means one with no overall timeout
	// (bundles are large; a stalled transfer is ended by ctx).
	HTTPClient *http.Client
	// Progress, if set, is called as a bundle downloads.
	Progress func(done, total int64)
}

// Updater checks for and applies releases on one install root.
type Updater struct {
	o      Options
	log    *slog.Logger
	agent  *agent.Agent
	client *tufrepo.Client
}

// metadataDir is where the verified TUF metadata is kept, under the root.
const metadataDir = "tuf"

// releaseManifest is where the release manifest is kept in an installed
// release, beside veil.
const releaseManifest = "release.json"

// Open opens the install agent on o.Root (running its recovery) and the
// TUF client. Without MetadataURL only the agent is opened: status,
// rollback and recovery work, checking and applying do not.
func Open(o Options) (*Updater, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	a, err := agent.Open(agent.Options{Root: o.Root, Log: o.Log, Running: o.Running, HealthTimeout: o.HealthTimeout, Restart: o.Restart})
	if err != nil {
		return nil, err
	}
	u := &Updater{o: o, log: o.Log, agent: a}
	if o.MetadataURL != "" {
		u.client, err = tufrepo.NewClient(filepath.Join(a.Root(), metadataDir), o.TrustedRoot, o.MetadataURL, o.TargetsURL)
		if err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Agent is the install agent.
func (u *Updater) Agent() *agent.Agent { return u.agent }

// Offer is what Check found.
type Offer struct {
	Current string          // the release current points at ("" if none)
	Latest  string          // the newest release published
	Next    tufrepo.Release // what to install next; zero Version when nothing
	Reason  string          // why Next is empty, or which release it is
}

// Available reports whether there is a release to install.
func (o Offer) Available() bool { return o.Next.TargetPath != "" }

// Check refreshes and verifies the repository's metadata and picks the
// release to install next: the newest one above the current release and
// above the highest ever committed that may update straight from the
// current one (its min_from), else the newest intermediate one that may.
// A release that was just rolled back is not offered again; a newer one
// is.
func (u *Updater) Check(ctx context.Context) (Offer, error) {
	if u.client == nil {
		return Offer{}, errors.New("update.metadata_url is not set: there is no repository to check")
	}
	latest, err := u.client.Latest(ctx)
	if err != nil {
		return Offer{}, err
	}
	st := u.agent.Status()
	off := Offer{Current: u.agent.Current(), Latest: latest.Version.String()}
	floor := func(v string) (release.Version, bool) {
		if v == "" {
			return release.Version{}, false
		}
		pv, err := release.ParseVersion(v)
		return pv, err == nil
	}
	if st.Phase == agent.Switched || st.Phase == agent.HealthChecking {
		off.Reason = fmt.Sprintf("the update to %s awaits its health check (state %s, deadline %s)", st.Version, st.Phase, st.Deadline.Format(time.RFC3339))
		return off, nil
	}
	cur, haveCur := floor(off.Current)
	high, haveHigh := floor(st.Highest)
	rels := u.client.Releases()
	for i := len(rels) - 1; i >= 0; i-- {
		r := rels[i]
		if (haveCur && !cur.Less(r.Version)) || (haveHigh && !high.Less(r.Version)) {
			break // sorted: nothing older is newer than what runs
		}
		if st.Phase == agent.RolledBack && st.Version == r.Version.String() {
			if r.Version == latest.Version {
				off.Reason = fmt.Sprintf("%s was rolled back (%s); waiting for a newer release", r.Version, st.LastError)
				return off, nil
			}
			continue
		}
		if haveCur && cur.Less(r.MinFrom) {
			continue // too big a step from here
		}
		off.Next = r
		if r.Version == latest.Version {
			off.Reason = fmt.Sprintf("%s is newer than %s", r.Version, orNone(off.Current))
		} else {
			off.Reason = fmt.Sprintf("%s first: the newest release %s needs at least %s", r.Version, latest.Version, latest.MinFrom)
		}
		return off, nil
	}
	off.Reason = fmt.Sprintf("up to date (%s)", orNone(off.Current))
	return off, nil
}

// Releases lists the releases the last Check verified, oldest first.
func (u *Updater) Releases() []tufrepo.Release {
	if u.client == nil {
		return nil
	}
	return u.client.Releases()
}

// Apply downloads, verifies and installs r, switches to it and restarts
// veil (see agent.Agent.Apply). Nothing is staged before the bundle's
// length and SHA-256 match the signed metadata.
func (u *Updater) Apply(ctx context.Context, r tufrepo.Release) error {
	if u.client == nil {
		return errors.New("update.metadata_url is not set: there is no repository to apply from")
	}
	version := r.Version.String()
	from := u.agent.Current()
	fetch := func(ctx context.Context, dst string) error {
		url := u.client.TargetURL(r)
		u.log.Info("downloading release", "version", version, "bytes", r.Length, "url", url)
		if err := agent.Download(ctx, url, dst, r.Length, r.SHA256, u.o.HTTPClient, u.o.Progress); err != nil {
			return err
		}
		// Download checked the hash it was given; check the file against
		// the signed metadata once more, by path.
		return u.client.VerifyTarget(r, dst)
	}
	install := func(bundle, dest string) error {
		m, err := release.Extract(bundle, dest)
		if err != nil {
			return err
		}
		if err := checkManifest(m, version, from); err != nil {
			return err
		}
		return writeInstallRecords(dest, m)
	}
	return u.agent.Apply(ctx, version, fetch, install)
}

// checkManifest refuses a bundle whose manifest disagrees with the signed
// metadata or may not update from the running release.
func checkManifest(m release.Manifest, version, from string) error {
	if m.Version != version {
		return fmt.Errorf("the bundle's manifest says version %s, the signed metadata %s", m.Version, version)
	}
	if from == "" || m.MinFrom == "" {
		return nil
	}
	minFrom, err := release.ParseVersion(m.MinFrom)
	if err != nil {
		return err
	}
	cur, err := release.ParseVersion(from)
	if err != nil {
		return err
	}
	if cur.Less(minFrom) {
		return fmt.Errorf("release %s updates only from %s or later; %s runs", version, m.MinFrom, from)
	}
	return nil
}

// writeInstallRecords keeps the release manifest beside veil and writes
// the models' pins into models/.
func writeInstallRecords(dest string, m release.Manifest) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := durable.WriteFile(dest, releaseManifest, ".tmp-", data); err != nil {
		return fmt.Errorf("writing %s: %w", releaseManifest, err)
	}
	known := map[string]bool{}
	for _, e := range models.Manifest() {
		known[e.File] = true
	}
	pins := map[string]string{}
	for p, sum := range m.Files {
		dir, base := path.Split(p)
		// A file this veil does not know is kept but never loaded.
		if dir == "models/" && known[base] {
			pins[base] = sum
		}
	}
	if len(pins) == 0 {
		return nil
	}
	return models.WritePins(filepath.Join(dest, "models"), pins)
}

// ApplyLatest checks and, if there is a release to install, applies it.
// It returns the offer it acted on.
func (u *Updater) ApplyLatest(ctx context.Context) (Offer, error) {
	off, err := u.Check(ctx)
	if err != nil || !off.Available() {
		return off, err
	}
	u.log.Info("update available", "version", off.Next.Version.String(), "current", orNone(off.Current), "why", off.Reason)
	return off, u.Apply(ctx, off.Next)
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
