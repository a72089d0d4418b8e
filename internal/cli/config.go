package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/media"
)

// newConfigCmd builds `veil config check|show`.
func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a config file, or show the configuration veil would use",
		Long: `veil reads its configuration from, in rising order of precedence:

  1. built-in defaults            (docs/veil.example.yaml lists them all)
  2. a YAML file                  (--config FILE)
  3. VEIL_* environment variables (VEIL_ + the key upper-cased, dots as
                                   underscores: detect.score_threshold is
                                   VEIL_DETECT_SCORE_THRESHOLD; empty ones are ignored)
  4. command-line flags that are set (--log-level, redact's --every, ...)

Unknown keys in the file are errors, with a suggestion when a known key is
close, so a typo cannot silently leave a setting at its default. Every value
is checked against what it allows, and every problem is reported at once.
Durations use Go syntax ("500ms", "2s"). A relative models.dir in a file is
relative to that file's directory.

'veil config check' and 'veil config show' load exactly as 'veil redact'
does, VEIL_* variables included.`,
		Example: `  veil config check /etc/veil/veil.yaml
  veil config show docs/veil.example.yaml
  VEIL_DETECT_EVERY=3 veil config show --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newConfigCheckCmd(), newConfigShowCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a config file: print FILE: ok and a summary, or every problem",
		Long: `Check a config file as veil would load it: the file over the defaults,
then VEIL_* environment variables and --log-level on top.

On success prints "FILE: ok" and a one-line summary of the effective
configuration and each camera of the cameras: list. Otherwise prints
every problem, each naming the key, the bad
value and what is allowed, and exits non-zero:

  config veil.yaml: unknown key "detect.scor_threshold"; did you mean "detect.score_threshold"?
  config veil.yaml: redact.sigma_divisor: 8 is weaker than the floor; allowed 1..6

With --run it also requires what veil run needs beyond a valid file: at
least one camera (the package starts veil.service only then).`,
		Example: `  veil config check veil.yaml
  veil config check --run /etc/veil/veil.yaml && sudo systemctl start veil
  veil config check docs/veil.example.yaml && sudo cp docs/veil.example.yaml /etc/veil/veil.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkConfigFile(cmd, args[0]); err != nil {
				return err
			}
			if run, _ := cmd.Flags().GetBool("run"); run {
				return readyToRun(args[0])
			}
			return nil
		},
	}
	cmd.Flags().Bool("run", false, "also require what veil run needs: at least one camera")
	return cmd
}

// readyToRun says what a valid config at path lacks for veil run.
func readyToRun(path string) error {
	cams, err := config.LoadCameras(path)
	if err != nil {
		return err
	}
	if len(cams) == 0 {
		return fmt.Errorf("config %s: cameras: none; veil run needs at least one (veil init writes them, or see docs/veil.example.yaml)", path)
	}
	return nil
}

// checkConfigFile is veil config check (veil init runs it on the file it
// wrote): it loads path as veil does, with its cameras, and prints
// "PATH: ok" and a summary, or returns every problem.
func checkConfigFile(cmd *cobra.Command, path string) error {
	cfg, err := loadForConfigCmd(cmd, path)
	cams, cerr := config.LoadCameras(path)
	if err := errors.Join(err, cerr); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "%s: ok\n", path)
	fmt.Fprintln(out, cfg.Summary())
	for _, c := range cams {
		view := c.View
		if view == "" {
			view = "angled"
		}
		fmt.Fprintf(out, "camera %s: %s (%s view), %d counting line(s)\n", c.Name, media.Display(c.Source), view, len(c.Lines))
	}
	return nil
}

func newConfigShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show [FILE]",
		Short: "Print the effective configuration as YAML, defaults filled in",
		Long: `Print the configuration veil would run with as YAML: every key, from the
defaults, FILE (or --config), VEIL_* environment variables and --log-level.
The output is itself a valid config file. A relative models.dir from FILE is
shown resolved against FILE's directory.`,
		Example: `  veil config show                      # the defaults (and any VEIL_* variables)
  veil config show /etc/veil/veil.yaml
  veil -c veil.yaml config show > effective.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, _ := cmd.Flags().GetString("config")
			if len(args) == 1 {
				path = args[0]
			}
			cfg, err := loadForConfigCmd(cmd, path)
			if err != nil {
				return err
			}
			from := "defaults"
			if path != "" {
				from += " < " + path
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "# veil effective configuration: %s < VEIL_* environment < flags\n", from)
			_, err = out.Write(cfg.YAML())
			return err
		},
	}
}

// loadForConfigCmd loads path the way every veil command does, with the
// global --log-level flag bound when the command has it.
func loadForConfigCmd(cmd *cobra.Command, path string) (config.Config, error) {
	keys := map[string]string{}
	if cmd.Flags().Lookup("log-level") != nil {
		keys["log-level"] = "log.level"
	}
	return config.Load(path, cmd.Flags(), keys)
}
