package cli

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/consent"
)

// newConsentCmd builds `veil consent verify` and `veil consent key`.
func newConsentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consent",
		Short: "Check the shoppers' consent ledger; print the box's consent key",
		Long: `Shoppers who opt in at a sign are recorded in the consent ledger
(consent.ledger, default var/consent/ledger.jsonl): one JSON line per event
(grant, withdraw, expire, bind, unbind), each holding the SHA-256 hash of the
line before, so that a changed, removed or reordered line shows. The ledger
holds consent ids, notice versions, cameras, zones and times; it has no field
for an IP address, a browser, a phone number or any image.

Old entries of ended consents are purged after consent.retention; the file
then starts with an "anchor" line standing in for the last purged entry.`,
		Example: `  veil consent verify
  veil consent verify -c /etc/veil/veil.yaml
  veil consent verify --ledger /var/lib/veil/consent/ledger.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newConsentVerifyCmd(), newConsentKeyCmd())
	return cmd
}

func newConsentKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Print the box's public key, for registering the box at head office",
		Long: `Key prints the public half of the box's consent key (consent.key_file,
default var/consent/box.key; veil run creates it on first start), in
standard base64. It verifies the count reports, the QR codes' tokens and
the receipts the box signs. Head office (veil-hq) stores only reports
signed by a box in its registry (hq.boxes), and its consent relay checks
the codes of this box's sign with it; --registry prints the box's line for
that registry:

  {"device":"<site.device>","store":"<site.store>","key":"<base64>"}

Key only reads the key file; it never creates one.`,
		Example: `  veil consent key
  veil consent key --registry -c /etc/veil/veil.yaml >> boxes.jsonl   # at head office`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(cmd, map[string]string{"key-file": "consent.key_file"})
			if err != nil {
				return err
			}
			path := cfg.Consent.KeyFile
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("consent key: no key at %s (veil run creates it on first start when mqtt.broker is set or a camera has an optin_zone; set consent.key_file or --key-file)", path)
			}
			key, err := consent.LoadKey(path)
			if err != nil {
				return fmt.Errorf("consent key: %w", err)
			}
			pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
			if reg, _ := cmd.Flags().GetBool("registry"); reg {
				line, _ := json.Marshal(struct {
					Device string `json:"device"`
					Store  string `json:"store"`
					Key    string `json:"key"`
				}{cfg.Site.Device, cfg.Site.Store, pub})
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", line)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), pub)
			return nil
		},
	}
	cmd.Flags().String("key-file", "", "the box's consent key file (overrides consent.key_file, default var/consent/box.key)")
	cmd.Flags().Bool("registry", false, "print the box's line for head office's box registry (device, store, key) instead")
	return cmd
}

func newConsentVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the consent ledger's hash chain; exits non-zero if it is damaged or edited",
		Long: `Verify reads the whole consent ledger and checks every line: it must be an
entry exactly as veil writes it (no unknown fields), its seq must follow the
line before's, its prev must be the line before's hash, and its hash must
match its content. It prints

  ledger var/consent/ledger.jsonl: 42 entries, chain intact

or the first bad line, and then exits non-zero:

  ledger var/consent/ledger.jsonl line 7: hash does not match its content (edited?)

veil run refuses to open a ledger that does not verify. Keep a damaged
ledger as it is (it is the record); move it aside to start a new one.

The ledger is consent.ledger from the config (--config, VEIL_CONSENT_LEDGER),
or --ledger. Verify only reads it, so it can run while veil run is writing;
a line being written at that moment can show as cut off: run it again.`,
		Example: `  veil consent verify
  veil consent verify --ledger backup/ledger.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(cmd, map[string]string{"ledger": "consent.ledger"})
			if err != nil {
				return err
			}
			path := cfg.Consent.Ledger
			n, err := consent.VerifyLedger(path)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("consent verify: no ledger at %s (veil run creates it when a camera has an optin_zone; set consent.ledger or --ledger)", path)
			}
			if err != nil {
				return fmt.Errorf("consent verify: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ledger %s: %d entries, chain intact\n", path, n)
			return nil
		},
	}
	cmd.Flags().String("ledger", "", "consent ledger file (overrides consent.ledger, default var/consent/ledger.jsonl)")
	return cmd
}
