package admincli

import (
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// NewHealthCmd is `wimms health`: it probes a member's /healthz or /readyz. Container images are
// FROM scratch (no curl), so the image's HEALTHCHECK runs this.
func NewHealthCmd() *cobra.Command {
	cf := ClientFlags{Timeout: 3 * time.Second}
	var ready bool
	cmd := cf.ToolCmd(&cobra.Command{
		Use:   "health",
		Short: "probe a member: exit 0 when /healthz (or /readyz with --ready) answers 200",
	}, func(cmd *cobra.Command) error {
		path, probe := "/healthz", (*client.Client).Healthz
		if ready {
			path, probe = "/readyz", (*client.Client).Readyz
		}
		if cf.tls.CA != "" {
			// The image's probe inherits WIMMS_HTTP_ADDR=0.0.0.0:PORT; a
			// certificate names 127.0.0.1, not the unspecified address.
			cf.Addr = loopbackIfUnspecified(cf.Addr)
		}
		c, err := cf.Connect()
		if err != nil {
			return err
		}
		if _, err := probe(c.API, cmd.Context()); err != nil {
			return ExitError{Code: 1, Msg: fmt.Sprintf("%s%s: %v", cf.Addr, path, err)}
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s%s: ok\n", cf.Addr, path)
		return nil
	})
	cf.RegisterHTTPAddr(cmd.Flags())
	cmd.Flags().BoolVar(&ready, "ready", false, "probe /readyz instead of /healthz")
	return cmd
}

// loopbackIfUnspecified turns 0.0.0.0:PORT (or [::]:PORT) into the loopback
// address of the same family, which reaches the same local listener.
func loopbackIfUnspecified(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		return net.JoinHostPort("127.0.0.1", port)
	case ip == nil || !ip.IsUnspecified():
		return addr
	case ip.To4() != nil:
		return net.JoinHostPort("127.0.0.1", port)
	}
	return net.JoinHostPort("::1", port)
}
