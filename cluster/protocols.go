package cluster

import (
	"net/http"
	"time"
)

// Members talk HTTP/2 to each other: every relayed request, read index and
// join from one member to another shares one persistent connection
// (multiplexed streams) instead of one HTTP/1.1 connection per request in
// flight. Over plaintext that is HTTP/2 with prior knowledge (h2c); over
// TLS it is negotiated by ALPN. Clients of the API keep HTTP/1.1.

// ServerProtocols are the protocols a member's HTTP server must accept:
// HTTP/1.1 for API clients, HTTP/2 for the other members (h2c on a
// plaintext listener, ALPN "h2" on a TLS one). A server that does not
// accept h2c cannot be reached by the forwarding client (memberProtocols).
func ServerProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// memberProtocols: HTTP/2 only, in both its plaintext (h2c) and TLS forms.
// HTTP/1 is off on purpose: with it on, net/http would use HTTP/1.1 for
// http:// URLs.
func memberProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// memberHTTP2Config pings an idle member connection, so a connection to a
// member that vanished without a FIN or RST (killed host, dropped packets)
// is noticed and replaced instead of holding every later request until its
// ForwardTimeout.
func memberHTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		SendPingTimeout: 5 * time.Second,
		PingTimeout:     2 * time.Second,
	}
}
