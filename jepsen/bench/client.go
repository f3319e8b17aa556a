package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// newTransport is the one transport every client shares. Each bench client
// runs one request at a time, so MaxIdleConnsPerHost = clients keeps every
// client's connection alive between requests; without it net/http keeps 2
// per host and the run would measure TCP handshakes instead of the server.
func newTransport(clients int) *http.Transport {
	return &http.Transport{
		Proxy: nil, // loopback benchmarks must never detour through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          clients + 16,
		MaxIdleConnsPerHost:   clients + 16,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true, // small JSON bodies: gzip costs more CPU than it saves
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 0, // bounded per request by the context instead
		WriteBufferSize:       4 << 10,
		ReadBufferSize:        8 << 10,
	}
}

// apiClient is what all clients share: the transport and the credentials.
type apiClient struct {
	transport *http.Transport
	auth      []string // Authorization header value, nil without a token
	scheme    string   // "https" once useTLS ran, else "http"
}

// useTLS makes every request HTTPS, verifying members with cfg (nil: plain HTTP).
func (c *apiClient) useTLS(cfg *tls.Config) {
	if cfg == nil {
		return
	}
	c.transport.TLSClientConfig = cfg
	c.scheme = "https"
}

// newAPIClient: timeout bounds the wait for an answer's headers (the
// Transport's ResponseHeaderTimeout) rather than a per-request context,
// which would cost a context and a timer for every request.
func newAPIClient(clients int, token string, timeout time.Duration) *apiClient {
	t := newTransport(clients)
	t.ResponseHeaderTimeout = timeout
	c := &apiClient{transport: t}
	if token != "" {
		c.auth = []string{"Bearer " + token}
	}
	return c
}

func (c *apiClient) close() { c.transport.CloseIdleConnections() }

// requestBody is a reusable request body. The Transport may finish writing
// (and close) a body after RoundTrip has returned, so its bytes may only be
// overwritten once Close has been called.
type requestBody struct {
	bytes.Reader
	closed atomic.Bool
}

func (b *requestBody) Close() error {
	b.closed.Store(true)
	return nil
}

// requester sends one request at a time to one member on behalf of one
// goroutine, reusing its request, headers, URL and body buffer: RoundTrip
// allows reusing a request once the previous answer's body is closed. It
// sends through Transport.RoundTrip, not http.Client, which would copy the
// headers for redirects the API never makes. It never retries: a measured
// write must happen at most once.
type requester struct {
	transport  *http.Transport
	req        *http.Request
	url        url.URL
	getHeader  http.Header
	postHeader http.Header
	body       *requestBody
	buf        []byte
	limit      io.LimitedReader
}

func (c *apiClient) newRequester(ctx context.Context, addr string) *requester {
	r := &requester{
		transport:  c.transport,
		url:        url.URL{Scheme: cmp.Or(c.scheme, "http"), Host: addr},
		getHeader:  http.Header{},
		postHeader: http.Header{"Content-Type": {"application/json"}},
		body:       &requestBody{},
		buf:        make([]byte, 0, 512),
	}
	if c.auth != nil {
		r.getHeader["Authorization"] = c.auth
		r.postHeader["Authorization"] = c.auth
	}
	r.body.closed.Store(true)
	// The request is built once, for its context; every call resets the
	// fields that vary.
	r.req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	r.req.URL = &r.url
	return r
}

// buffer returns an empty buffer for the next request body. If the
// Transport has not yet closed the previous body, its bytes may still be
// being written: start a fresh buffer instead of overwriting them.
func (r *requester) buffer() []byte {
	if !r.body.closed.Load() {
		r.body = &requestBody{}
		r.body.closed.Store(true)
		r.buf = make([]byte, 0, cap(r.buf))
	}
	return r.buf[:0]
}

// response is what a bench operation needs from an answer. Body is only
// kept when the caller asks for it (keepBody) or the answer is an error.
type response struct {
	Code      int
	APIStatus string // "status" of an error body; "" on success
	Member    string // X-Wimms-Member
	Index     uint64 // X-Wimms-Index: the applied Raft index the answer reflects (0 if absent)
	Body      []byte
}

// transportError is a request that got no HTTP answer (refused, reset,
// timed out). It is counted apart from HTTP errors.
type transportError struct{ err error }

func (e *transportError) Error() string { return "transport: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// do sends one request; path is unescaped, query already encoded, body nil
// for none (otherwise a slice of r.buffer()). Success bodies are drained
// (so the connection is reused) and dropped unless keepBody is set: the
// bench must not spend the CPU it shares with the servers on decoding
// answers it does not use.
func (r *requester) do(method, path, query string, body []byte, keepBody bool) (response, error) {
	req := r.req
	req.Method = method
	r.url.Path, r.url.RawQuery = path, query
	if body == nil {
		req.Header = r.getHeader
		req.Body, req.ContentLength = nil, 0
	} else {
		r.buf = body[:0]
		r.body.Reset(body)
		r.body.closed.Store(false)
		req.Header = r.postHeader
		req.Body, req.ContentLength = r.body, int64(len(body))
	}
	resp, err := r.transport.RoundTrip(req)
	if err != nil {
		return response{}, &transportError{err: fmt.Errorf("%s %s: %w", method, path, err)}
	}
	defer resp.Body.Close()
	out := response{Code: resp.StatusCode, Member: resp.Header.Get("X-Wimms-Member")}
	if idx := resp.Header.Get("X-Wimms-Index"); idx != "" {
		out.Index, _ = strconv.ParseUint(idx, 10, 64) // a malformed header just means "unknown"
	}
	r.limit.R, r.limit.N = resp.Body, 1<<20
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if ok && !keepBody {
		_, err = io.Copy(io.Discard, &r.limit)
	} else {
		out.Body, err = io.ReadAll(&r.limit)
		if !ok {
			out.APIStatus = apiStatusOf(out.Body)
		}
	}
	r.limit.R = nil
	if err != nil {
		return out, &transportError{err: fmt.Errorf("reading answer of %s %s: %w", method, path, err)}
	}
	return out, nil
}

// apiStatusOf extracts the machine-readable status of an API.md error body;
// a body that is not one yields "-" so the summary still shows the code.
func apiStatusOf(body []byte) string {
	var e struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &e) != nil || e.Status == "" {
		return "-"
	}
	return e.Status
}

// errorKey is how an outcome is counted in the summary's error table:
// "503 no-leader", "401 invalid-generation", or "transport".
func errorKey(r response, err error) string {
	var te *transportError
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
func apiError(what string, r response) error {
	body := r.Body
	if len(body) > 300 {
		body = body[:300]
	}
	return fmt.Errorf("%s: HTTP %d %s: %s", what, r.Code, r.APIStatus, bytes.TrimSpace(body))
}
