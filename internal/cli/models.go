package cli

import "github.com/spf13/cobra"

func newModelsCmd() *cobra.Command {
	return &cobra.Command{Use: "models", Short: "(being built)"}
}
