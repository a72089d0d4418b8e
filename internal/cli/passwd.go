package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/veil-edge/veil/web"
)

func newPasswdCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd",
		Short: "Hash an operator password for http.password_hash",
		Long: `Read a password (typed without echo on a terminal, or one line from stdin)
and print its bcrypt hash. Put the hash, quoted, in the config file's
http.password_hash; the password itself is never stored.`,
		Example: `  veil passwd
  printf '%s\n' "$PASSWORD" | veil passwd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pw string
			if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
				fmt.Fprint(os.Stderr, "password: ")
				b, err := term.ReadPassword(fd)
				fmt.Fprintln(os.Stderr)
				if err != nil {
					return err
				}
				pw = string(b)
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("no password on stdin")
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			h, err := web.HashPassword(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}
