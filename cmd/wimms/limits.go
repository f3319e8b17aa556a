package main

import (
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/httpapi"
)

// addLimitFlags registers the HTTP server's bounds (docs/cluster.md, "Limits on clients").
func addLimitFlags(fl *pflag.FlagSet, l *httpapi.Limits) {
	fl.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", httpapi.DefaultReadHeaderTimeout, "time a client has to send a request's headers")
	fl.DurationVar(&l.BodyTimeout, "body-timeout", httpapi.DefaultBodyTimeout, "time a client has to send a request's body once its headers are in (then 408 and the connection closes)")
	fl.DurationVar(&l.WriteTimeout, "write-timeout", httpapi.DefaultWriteTimeout, "bound on answering one request, from the end of its headers (keep above --apply-timeout + --leader-wait)")
	fl.DurationVar(&l.IdleTimeout, "idle-timeout", httpapi.DefaultIdleTimeout, "how long an idle keep-alive connection stays open")
	fl.DurationVar(&l.BusyIdleTimeout, "busy-idle-timeout", httpapi.DefaultBusyIdleTimeout, "idle keep-alive limit while over 3/4 of --max-conns are open")
	fl.IntVar(&l.MaxConns, "max-conns", httpapi.DefaultMaxConns, "most concurrent HTTP connections (after TLS); at the cap the longest-idle one is closed for a new client, or the new one is refused")
	fl.IntVar(&l.MaxConnsPerAddress, "max-conns-per-address", httpapi.DefaultMaxConnsPerAddress, "most concurrent HTTP connections from one client IP")
	fl.IntVar(&l.MaxPendingHandshakes, "max-pending-handshakes", httpapi.DefaultMaxPendingHandshakes, "most unfinished TLS handshakes on the HTTPS port (1/16 of it per client IP); more are closed at once")
}
