package admincli

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// tokenBytes is the entropy of a token `wimms tls token` makes: 256 bits.
const tokenBytes = 32

// newTLSTokenCmd makes an API, admin or metrics bearer token in a file the
// server and the tools read (--api-token-file, --admin-token-file): one
// line, mode 0600, never an existing file overwritten, so the secret never
// passes through a shell variable, the process list or a world-readable
// file.
func newTLSTokenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "write a new random bearer token to a file (mode 0600) for --api-token-file / --admin-token-file",
		Example: exampleOf(
			"wimms tls token --out secrets/api.token",
			"wimms server --api-token-file secrets/api.token --admin-token-file secrets/admin.token ..."),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out FILE is required: the token is written only to a file")
			}
			if err := writeNewToken(out); err != nil {
				return ExitError{Code: 1, Msg: err.Error()}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote a new token to %s (mode 0600)\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to create (refused if it exists)")
	return cmd
}

func writeNewToken(path string) error {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("tls token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("tls token: %s exists: remove it first (a new token locks out everyone using the old one)", path)
	}
	if err != nil {
		return fmt.Errorf("tls token: %w", err)
	}
	_, werr := fmt.Fprintln(f, base64.RawURLEncoding.EncodeToString(b))
	if err := errors.Join(werr, f.Chmod(0o600), f.Close()); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("tls token: writing %s: %w", path, err)
	}
	return nil
}
