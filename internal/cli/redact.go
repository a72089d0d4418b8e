package cli

import "github.com/spf13/cobra"

func newRedactCmd() *cobra.Command {
	return &cobra.Command{Use: "redact", Short: "(being built)"}
}
