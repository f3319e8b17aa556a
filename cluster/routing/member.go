package routing

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

// dialError marks a failure to connect: no byte of the request left this
// member, so it is the one error after which a write may be retried.
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string { return fmt.Sprintf("dial %s: %v", e.addr, e.err) }
func (e *dialError) Unwrap() error { return e.err }

// MemberClient is the one HTTP client for all member-to-member requests
// (relayed requests, joins, read indexes, status, probes) with its pooled
// transport, and the tokens members authenticate each other with.
type MemberClient struct {
	client *http.Client
	tr     *http.Transport
	https  bool
	// Bearer tokens: members hold the same tokens as their clients.
	apiToken, adminToken string
}

// MemberClientConfig configures a MemberClient.
type MemberClientConfig struct {
	// LocalIP, when set, is the address every connection leaves from (see
	// newHTTPTransport).
	LocalIP net.IP
	// DialTLS, when set, makes every call HTTPS: it dials addr and
	// completes a mutual TLS handshake.
	DialTLS func(ctx context.Context, d *net.Dialer, network, addr string) (*tls.Conn, error)
	// APIToken and AdminToken: see SetAuth and Authorized.
	APIToken, AdminToken string
}

// NewMemberClient builds the member-to-member client. With DialTLS set
// (mutual TLS between members), every connection is a verified TLS
// connection.
func NewMemberClient(cfg MemberClientConfig) *MemberClient {
	tr := newHTTPTransport(cfg.LocalIP, cfg.DialTLS)
	return &MemberClient{
		client: &http.Client{
			Transport: tr,
			// The leader's redirects, if any, are relayed to the client as they are.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tr:         tr,
		https:      cfg.DialTLS != nil,
		apiToken:   cfg.APIToken,
		adminToken: cfg.AdminToken,
	}
}

// Do sends req over the pooled transport. A failure to connect (nothing
// was sent) is a *dialError inside the error.
func (m *MemberClient) Do(req *http.Request) (*http.Response, error) { return m.client.Do(req) }

// URL is how member-to-member calls address path on the member at addr.
func (m *MemberClient) URL(addr, path string) string {
	if m.https {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// CloseIdleConnections closes the pooled connections nobody uses.
func (m *MemberClient) CloseIdleConnections() { m.tr.CloseIdleConnections() }

// Member-to-member authentication: members hold the same tokens as their
// clients. A member sends the API token on reads and the admin token on
// mutations (a join, a removal), each falling back to the other when only
// one is set; it accepts either on its internal endpoints. With no token
// configured the internal endpoints are open like the rest of the API.

// Authorized checks the bearer token of a member-to-member request, by
// the API's own rule (wire.HasBearerToken).
func (m *MemberClient) Authorized(r *http.Request) bool {
	if m.apiToken == "" && m.adminToken == "" {
		return true
	}
	return wire.HasBearerToken(r, m.apiToken, m.adminToken)
}

// SetAuth puts this member's token on a request to another member: the
// admin token for mutations, the member token otherwise.
func (m *MemberClient) SetAuth(req *http.Request, mutation bool) {
	tok := m.memberToken()
	if mutation {
		tok = m.adminTokenOrAPI()
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

func (m *MemberClient) memberToken() string {
	if m.apiToken != "" {
		return m.apiToken
	}
	return m.adminToken
}

func (m *MemberClient) adminTokenOrAPI() string {
	if m.adminToken != "" {
		return m.adminToken
	}
	return m.apiToken
}

// newHTTPTransport: keep-alive connections dialed from this member's own
// IP: on loopback the kernel would otherwise pick 127.0.0.1 for
// every member, and a harness that partitions members by source address
// (iptables) could not cut them apart.
func newHTTPTransport(localIP net.IP, dialTLS func(context.Context, *net.Dialer, string, string) (*tls.Conn, error)) *http.Transport {
	dialer := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}
	if localIP != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: localIP}
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{addr: addr, err: err}
			}
			return conn, nil
		},
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // bounded per request by ForwardTimeout
		// Relay the leader's body byte for byte, compressed or not.
		DisableCompression: true,
	}
	if dialTLS != nil {
		// A failed handshake sent no request byte either: still a dialError.
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialTLS(ctx, dialer, network, addr)
			if err != nil {
				return nil, &dialError{addr: addr, err: err}
			}
			return conn, nil
		}
	}
	return tr
}
