package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"

	"encoding/json"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// Requester is the client's raw path for a load generator: it sends one
// request at a time to one member on behalf of one goroutine, reusing its
// request, headers, URL and body buffer (RoundTrip allows reusing a request
// once the previous answer's body is closed). It sends through
// RoundTrip, not http.Client, which would copy the headers for redirects
// the API never makes, and it never retries: a measured write must happen
// at most once. It does not track TransportError.Sent.
type Requester struct {
	transport  http.RoundTripper
	req        *http.Request
	url        url.URL
	getHeader  http.Header
	postHeader http.Header
	body       *requestBody
	buf        []byte
	limit      io.LimitedReader
}

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

// Requester returns a Requester of c's member, through c's transport and
// with c's token. ctx is the context of every request it sends: a load
// generator bounds a request's wait with TransportOptions'
// ResponseHeaderTimeout, which costs no context or timer per request.
func (c *Client) Requester(ctx context.Context) *Requester {
	// A base URL that does not parse fails in RoundTrip, with context.
	u, err := url.Parse(c.base)
	if err != nil {
		u = &url.URL{Scheme: "http", Host: c.base}
	}
	rt := c.hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	r := &Requester{
		transport:  rt,
		url:        url.URL{Scheme: u.Scheme, Host: u.Host},
		getHeader:  http.Header{},
		postHeader: http.Header{"Content-Type": {"application/json"}},
		body:       &requestBody{},
		buf:        make([]byte, 0, 512),
	}
	if c.token != "" {
		auth := []string{"Bearer " + c.token}
		r.getHeader["Authorization"] = auth
		r.postHeader["Authorization"] = auth
	}
	r.body.closed.Store(true)
	// The request is built once, for its context; every call resets the
	// fields that vary.
	r.req = (&http.Request{Method: http.MethodGet, URL: &r.url, Header: r.getHeader}).WithContext(ctx)
	r.req.URL = &r.url
	return r
}

// Buffer returns an empty buffer for the next request body. If the
// Transport has not yet closed the previous body, its bytes may still be
// being written: start a fresh buffer instead of overwriting them.
func (r *Requester) Buffer() []byte {
	if !r.body.closed.Load() {
		r.body = &requestBody{}
		r.body.closed.Store(true)
		r.buf = make([]byte, 0, cap(r.buf))
	}
	return r.buf[:0]
}

// Answer is what a load generator needs from an answer. Body is only kept
// when the caller asks for it (keepBody) or the answer is an error.
type Answer struct {
	Code      int
	APIStatus string // "status" of an error body ("-" if it has none); "" on success
	Member    string // X-Wimms-Member
	Index     uint64 // X-Wimms-Index: the applied Raft index the answer reflects (0 if absent)
	Body      []byte
}

// Do sends one request; path is unescaped, query already encoded, body nil
// for none (otherwise a slice of r.Buffer()). Success bodies are drained
// (so the connection is reused) and dropped unless keepBody is set: a load
// generator must not spend the CPU it shares with the servers on decoding
// answers it does not use. A request that got no answer is a
// *TransportError.
func (r *Requester) Do(method, path, query string, body []byte, keepBody bool) (Answer, error) {
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
	return r.roundTrip(method, path, keepBody)
}

// GetWithHeader sends a GET with header h in place of the Requester's own
// headers (so without its API token): for endpoints whose Authorization is
// the user's, like the token server's. h is only read, so one prepared
// header map may be sent by several Requesters at once.
func (r *Requester) GetWithHeader(path, query string, h http.Header, keepBody bool) (Answer, error) {
	req := r.req
	req.Method = http.MethodGet
	r.url.Path, r.url.RawQuery = path, query
	req.Header = h
	req.Body, req.ContentLength = nil, 0
	return r.roundTrip(http.MethodGet, path, keepBody)
}

func (r *Requester) roundTrip(method, path string, keepBody bool) (Answer, error) {
	req := r.req
	resp, err := r.transport.RoundTrip(req)
	if err != nil {
		return Answer{}, &TransportError{Method: method, Path: path, Err: err}
	}
	defer resp.Body.Close()
	out := Answer{Code: resp.StatusCode, Member: resp.Header.Get("X-Wimms-Member")}
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
		return out, &TransportError{Method: method, Path: path, Sent: true, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	return out, nil
}

// apiStatusOf extracts the machine-readable status of an error body; a
// body that is not one yields "-" so that a summary still shows the code.
func apiStatusOf(body []byte) string {
	var e wire.ErrorBody
	if json.Unmarshal(body, &e) != nil || e.Status == "" {
		return "-"
	}
	return e.Status
}
