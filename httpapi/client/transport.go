package client

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// TransportOptions shape the connections a Transport makes. Callers that
// talk to many members (the load generator, the chaos harness) build one
// Transport and give it to every Client with WithTransport.
type TransportOptions struct {
	// TLS is used for https:// members (nil: the system defaults).
	TLS *tls.Config
	// IdlePerHost is how many idle connections to one member are kept for
	// reuse (0: net/http's default of 2). A load generator sets it to its
	// concurrency; otherwise it measures TCP handshakes, not the server.
	IdlePerHost int
	// NoKeepAlive opens one connection per request, so that "could not
	// connect" is told apart from "sent, then lost" (the chaos harness).
	NoKeepAlive bool
	// DialTimeout bounds connecting (0: 5s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an answer's headers without
	// a per-request context (0: none; the call's timeout still applies).
	ResponseHeaderTimeout time.Duration
}

// NewTransport returns a transport for wimms members. It never uses
// HTTP_PROXY (members are addressed directly) and does not compress: the
// API's bodies are small and gzip costs more CPU than it saves.
func NewTransport(o TransportOptions) *http.Transport {
	dial := o.DialTimeout
	if dial == 0 {
		dial = 5 * time.Second
	}
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       o.TLS,
		DisableKeepAlives:     o.NoKeepAlive,
		DisableCompression:    true,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		WriteBufferSize:       4 << 10,
		ReadBufferSize:        8 << 10,
	}
	if o.IdlePerHost > 0 {
		t.MaxIdleConns = o.IdlePerHost + 16
		t.MaxIdleConnsPerHost = o.IdlePerHost + 16
	}
	return t
}
