package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// api is what all bench clients share: one tuned transport (keep-alive,
// MaxIdleConnsPerHost ≥ clients, so each client keeps its connection) and
// the token. timeout bounds the wait for an answer's headers (the
// Transport's ResponseHeaderTimeout) rather than a per-request context,
// which would cost a context and a timer for every request.
type api struct {
	transport *http.Transport
	token     string
	scheme    string // "https://" with a TLS configuration, else "http://"
}

// newAPI: tlsCfg, when set, makes every request HTTPS verified with it.
func newAPI(clients int, token string, timeout time.Duration, tlsCfg *tls.Config) *api {
	t := client.NewTransport(client.TransportOptions{IdlePerHost: clients, ResponseHeaderTimeout: timeout, TLS: tlsCfg})
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
	}
	return &api{transport: t, token: token, scheme: scheme}
}

func (a *api) close() { a.transport.CloseIdleConnections() }

// newRequester is one client's low-overhead sender to the member at addr.
func (a *api) newRequester(ctx context.Context, addr string) *client.Requester {
	return client.New(a.scheme+addr, client.WithTransport(a.transport), client.WithToken(a.token)).Requester(ctx)
}

// errorKey is how an outcome is counted in the summary's error table:
// "503 no-leader", "401 invalid-generation", or "transport".
func errorKey(r client.Answer, err error) string {
	var te *client.TransportError
	if errors.As(err, &te) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "transport timeout"
		}
		return "transport"
	}
	if err != nil {
		return "client"
	}
	return strconv.Itoa(r.Code) + " " + r.APIStatus
}

// paths are a service's API paths (unescaped: url.URL escapes them).
type paths struct {
	service string // /v1/services/{service}
	nodes   string
	users   string
}

func newPaths(service string) paths {
	svc := "/v1/services/" + service
	return paths{service: svc, nodes: svc + "/nodes", users: svc + "/users"}
}

// apiError turns an unexpected answer into an error with context.
func apiError(what string, r client.Answer) error {
	body := r.Body
	if len(body) > 300 {
		body = body[:300]
	}
	return fmt.Errorf("%s: HTTP %d %s: %s", what, r.Code, r.APIStatus, bytes.TrimSpace(body))
}
