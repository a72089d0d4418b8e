package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/firmware/tufrepo"
)

// newReleaseCmd builds `veil release`: head office's tools for the signed
// update repository the boxes read.
func newReleaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Build and sign releases into the update repository (head office)",
		Long: `Head office publishes veil releases to a TUF repository (The Update
Framework): static files, served over HTTPS, whose metadata is signed,
versioned and expiring. A box trusts only what a threshold of root keys
vouches for, refuses a version lower than one it ran, and refuses stale
metadata.

Keys are ed25519 PEM files, one per role: several root keys (kept offline;
a threshold of them signs the root), and one each for targets, snapshot and
timestamp. Keep every key outside the published directory.

A release is one bundle: the veil binary and the model files, each pinned by
SHA-256 in its manifest, with the lowest version it may update from.`,
		Example: `  veil release keygen keys/root1.pem keys/root2.pem keys/root3.pem keys/targets.pem keys/snapshot.pem keys/timestamp.pem
  veil release init --repo repo --threshold 2 --root-key keys/root1.pem --root-key keys/root2.pem --root-key keys/root3.pem \
      --targets-key keys/targets.pem --snapshot-key keys/snapshot.pem --timestamp-key keys/timestamp.pem
  veil release add --repo repo --version 1.4.0 --min-from 1.2.0 --binary bin/veil --models models/files \
      --targets-key keys/targets.pem --snapshot-key keys/snapshot.pem --timestamp-key keys/timestamp.pem
  veil release refresh --repo repo --timestamp-key keys/timestamp.pem   # daily: boxes refuse a stale timestamp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newReleaseKeygenCmd(), newReleaseInitCmd(), newReleaseAddCmd(), newReleaseRefreshCmd())
	return cmd
}

func newReleaseKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen FILE...",
		Short: "Create ed25519 signing keys (PEM, mode 0600); never overwrites",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range args {
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					return fmt.Errorf("release keygen: %w", err)
				}
				k, err := tufrepo.GenerateKey(p)
				if err != nil {
					return fmt.Errorf("release keygen %s: %w", p, err)
				}
				id, _ := tufrepo.KeyID(k)
				fmt.Fprintf(cmd.OutOrStdout(), "%s: key %s\n", p, id)
			}
			return nil
		},
	}
}

// keyFlags are the role key files a subcommand takes.
type keyFlags struct {
	root                         []string
	targets, snapshot, timestamp string
}

func (f *keyFlags) add(cmd *cobra.Command, root, online bool) {
	if root {
		cmd.Flags().StringArrayVar(&f.root, "root-key", nil, "root key file (repeat for each root key)")
	}
	if online {
		cmd.Flags().StringVar(&f.targets, "targets-key", "", "targets key file")
		cmd.Flags().StringVar(&f.snapshot, "snapshot-key", "", "snapshot key file")
	}
	cmd.Flags().StringVar(&f.timestamp, "timestamp-key", "", "timestamp key file")
}

// load reads the key files given; a flag left empty leaves its key nil.
func (f *keyFlags) load() (tufrepo.Keys, error) {
	var k tufrepo.Keys
	for _, p := range f.root {
		key, err := tufrepo.LoadKey(p)
		if err != nil {
			return k, fmt.Errorf("--root-key %s: %w", p, err)
		}
		k.Root = append(k.Root, key)
	}
	for _, r := range []struct {
		flag, path string
		dst        *[]byte
	}{{"--targets-key", f.targets, (*[]byte)(&k.Targets)}, {"--snapshot-key", f.snapshot, (*[]byte)(&k.Snapshot)}, {"--timestamp-key", f.timestamp, (*[]byte)(&k.Timestamp)}} {
		if r.path == "" {
			continue
		}
		key, err := tufrepo.LoadKey(r.path)
		if err != nil {
			return k, fmt.Errorf("%s %s: %w", r.flag, r.path, err)
		}
		*r.dst = key
	}
	return k, nil
}

func newReleaseInitCmd() *cobra.Command {
	var keys keyFlags
	var repo string
	var threshold int
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the update repository: root (threshold of root keys), targets, snapshot, timestamp",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := keys.load()
			if err != nil {
				return fmt.Errorf("release init: %w", err)
			}
			if err := tufrepo.Init(repo, k, threshold, tufrepo.DefaultExpiries(time.Now())); err != nil {
				return fmt.Errorf("release init: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "repository %s created; ship %s with every box as its trusted root\n", repo, filepath.Join(repo, "metadata", "1.root.json"))
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "repository directory to create (required)")
	cmd.Flags().IntVar(&threshold, "threshold", 1, "root keys needed to sign a root")
	keys.add(cmd, true, true)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func newReleaseAddCmd() *cobra.Command {
	var keys keyFlags
	var repo, version, minFrom, binary, modelsDir string
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Bundle a veil binary and its models as a release and sign it into the repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files := map[string]string{release.BinaryName: binary}
			if modelsDir != "" {
				entries, err := os.ReadDir(modelsDir)
				if err != nil {
					return fmt.Errorf("release add: --models: %w", err)
				}
				for _, e := range entries {
					if e.Type().IsRegular() {
						files["models/"+e.Name()] = filepath.Join(modelsDir, e.Name())
					}
				}
			}
			tmp, err := os.CreateTemp("", "veil-bundle-*.tar")
			if err != nil {
				return fmt.Errorf("release add: %w", err)
			}
			defer os.Remove(tmp.Name())
			m, err := release.Build(tmp, version, minFrom, files)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("release add: building the bundle: %w", err)
			}
			k, err := keys.load()
			if err != nil {
				return fmt.Errorf("release add: %w", err)
			}
			rel, err := tufrepo.AddRelease(repo, tmp.Name(), m, k, tufrepo.DefaultExpiries(time.Now()))
			if err != nil {
				return fmt.Errorf("release add: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s (from %s or later): %d files, %d bytes, sha256 %s, published as %s\n",
				rel.Version, rel.MinFrom, len(m.Files), rel.Length, rel.SHA256, rel.TargetPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "repository directory (required)")
	cmd.Flags().StringVar(&version, "version", "", "release version, MAJOR.MINOR.PATCH (required)")
	cmd.Flags().StringVar(&minFrom, "min-from", "", "lowest version that may update to this one (required)")
	cmd.Flags().StringVar(&binary, "binary", "bin/veil", "the veil binary to ship")
	cmd.Flags().StringVar(&modelsDir, "models", "", "directory of model files to ship (with their manifest.json)")
	keys.add(cmd, false, true)
	for _, f := range []string{"repo", "version", "min-from"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newReleaseRefreshCmd() *cobra.Command {
	var keys keyFlags
	var repo string
	var valid time.Duration
	cmd := &cobra.Command{
		Use:   "refresh",
		Short: "Re-sign the timestamp so boxes do not refuse the repository as stale (run daily)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := keys.load()
			if err != nil {
				return fmt.Errorf("release refresh: %w", err)
			}
			until := time.Now().Add(valid)
			if err := tufrepo.Refresh(repo, k, until); err != nil {
				return fmt.Errorf("release refresh: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "timestamp of %s valid until %s\n", repo, until.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "repository directory (required)")
	cmd.Flags().DurationVar(&valid, "valid", 24*time.Hour, "how long the new timestamp is valid")
	keys.add(cmd, false, false)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}
