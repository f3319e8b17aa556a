package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// newHealthCmd probes a member's /healthz or /readyz. Container images are
// FROM scratch (no curl), so the image's HEALTHCHECK runs this.
func newHealthCmd() *cobra.Command {
	var addr string
	var ready bool
	var timeout time.Duration
	var tf toolTLSFlags
	cmd := &cobra.Command{
		Use:   "health",
		Short: "probe a member: exit 0 when /healthz (or /readyz with --ready) answers 200",
		Args:  cobra.NoArgs,
		RunE: envFirst(func(cmd *cobra.Command) error {
			path, probe := "/healthz", (*client.Client).Healthz
			if ready {
				path, probe = "/readyz", (*client.Client).Readyz
			}
			if tf.ca != "" {
				// The image's probe inherits WIMMS_HTTP_ADDR=0.0.0.0:PORT; a
				// certificate names 127.0.0.1, not the unspecified address.
				addr = loopbackIfUnspecified(addr)
			}
			c, err := tf.client(addr, client.WithTimeout(timeout))
			if err != nil {
				return err
			}
			if _, err := probe(c, context.Background()); err != nil {
				return exitError{code: 1, msg: fmt.Sprintf("%s%s: %v", addr, path, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s%s: ok\n", addr, path)
			return nil
		}),
	}
	cmd.Flags().StringVar(&addr, "http-addr", "127.0.0.1:8080", "member HTTP address")
	cmd.Flags().BoolVar(&ready, "ready", false, "probe /readyz instead of /healthz")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "probe timeout")
	addToolTLSFlags(cmd.Flags(), &tf)
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
