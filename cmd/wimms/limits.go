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
	fl.IntVar(&l.MaxConns, "max-conns", httpapi.DefaultMaxConns, "most concurrent HTTP connections; more wait in the accept queue")
}
