// Package client is the typed Go client of the wimms HTTP API
// (docs/api.md). `wimms status`, `wimms health`, the admin CLI
// (`wimms service|node|user|...`, docs/cli.md), the load generator
// (cmd/internal/bench), the chaos harness (jepsen) and the end-to-end tests of
// cmd/wimms all use it; the objects it sends and decodes are package wire's.
//
// It never retries. A non-2xx answer is an *APIError. A call without a
// complete answer is a *TransportError; a write whose TransportError has
// Sent set may or may not have been applied (one never sent was not), and
// so may a 504 unknown-outcome. Repeat such a write with the same
// CallOptions.IdempotencyKey to get its first answer instead of acting twice.
//
// Connection policy (pool size, keep-alive, TLS) is TransportOptions'; share
// one NewTransport between the clients of many members with WithTransport.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

// DefaultTimeout bounds a call when no WithTimeout option is given.
const DefaultTimeout = 30 * time.Second

// maxAnswerBytes bounds how much of an answer is read, so a broken or
// hostile server cannot exhaust the caller's memory.
const maxAnswerBytes = 32 << 20

// Client talks to one member. It is safe for concurrent use.
type Client struct {
	base    string
	hc      *http.Client
	token   string
	timeout time.Duration
	tls     *tls.Config
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the http.Client (transport, connection pooling).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTransport sends through rt, typically one NewTransport shared by the
// clients of every member.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) { c.hc = &http.Client{Transport: rt} }
}

// WithTLSConfig is the TLS configuration of the client's own transport
// (ignored with WithHTTPClient or WithTransport, whose transport has its own).
func WithTLSConfig(cfg *tls.Config) Option { return func(c *Client) { c.tls = cfg } }

// WithToken sends "Authorization: Bearer <token>" on every call.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithTimeout bounds each call (0: only the caller's context bounds it).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client of the member at baseURL, e.g. "http://127.0.0.1:8080".
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.hc != nil:
	case c.tls != nil:
		c.hc = &http.Client{Transport: NewTransport(TransportOptions{TLS: c.tls})}
	default:
		c.hc = defaultHTTPClient()
	}
	return c
}

// defaultHTTPClient is shared by the clients built without a transport of
// their own, so that many short-lived clients reuse connections instead of
// each leaving its own idle ones behind.
var defaultHTTPClient = sync.OnceValue(func() *http.Client {
	return &http.Client{Transport: NewTransport(TransportOptions{})}
})

// BaseURL is the member this client talks to.
func (c *Client) BaseURL() string { return c.base }

// CallOptions are per-call settings. Pass none or one.
type CallOptions struct {
	// Consistency of a read: "stale", "default" or "linearizable" ("" = default).
	Consistency string
	// MaxStaleness bounds a stale read (0 = no bound).
	MaxStaleness time.Duration
	// IdempotencyKey makes a write safe to repeat (1–128 printable chars).
	IdempotencyKey string
	// Header adds request headers (e.g. X-Wimms-Forwarded in tests).
	Header http.Header
	// Timeout bounds this call instead of the client's WithTimeout.
	Timeout time.Duration
}

// Meta is what an answer's headers say about the member that gave it.
type Meta struct {
	HTTPStatus    int
	Index         uint64 // X-Wimms-Index: the applied index the answer reflects
	Member        string // X-Wimms-Member
	KnownLeader   bool   // X-Wimms-Known-Leader (reads)
	LastContactMs int64  // X-Wimms-Last-Contact (reads)
	Replayed      bool   // X-Wimms-Idempotent-Replay: the first answer to this Idempotency-Key
	Header        http.Header
}

// Created reports a 201 answer (a service, node or user record was created).
func (m Meta) Created() bool { return m.HTTPStatus == http.StatusCreated }

func metaFrom(resp *http.Response) Meta {
	h := resp.Header
	m := Meta{HTTPStatus: resp.StatusCode, Member: h.Get("X-Wimms-Member"), Header: h}
	m.Index, _ = strconv.ParseUint(h.Get("X-Wimms-Index"), 10, 64)
	m.KnownLeader = h.Get("X-Wimms-Known-Leader") == "true"
	m.LastContactMs, _ = strconv.ParseInt(h.Get("X-Wimms-Last-Contact"), 10, 64)
	m.Replayed = h.Get("X-Wimms-Idempotent-Replay") == "true"
	return m
}

// TransportError is a call that got no complete HTTP answer: refused,
// reset, timed out, or cut off while the answer was read.
type TransportError struct {
	Method, Path string
	// Sent: a connection was made, so the server may have read the request
	// and acted on it. A write that was not sent certainly did nothing.
	Sent bool
	Err  error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("wimms client: %s %s: %v", e.Method, e.Path, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// APIError is a non-2xx answer. Status is the API's machine-readable status
// (e.g. "not-found", "invalid-generation", "not-leader"); it is "" when the
// answer did not have the API's error shape (e.g. a proxy's page).
type APIError struct {
	HTTPStatus int
	Status     string
	Errors     []wire.ErrorDetail
	Header     http.Header
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wimms: %d %s", e.HTTPStatus, e.Status)
	for _, d := range e.Errors {
		fmt.Fprintf(&b, "; %s %s: %s", d.Location, d.Name, d.Description)
	}
	return b.String()
}

// IsStatus reports whether err is an *APIError with the given status.
func IsStatus(err error, status string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// IsUnknownQueryParameter reports whether err is the 400 a server gives
// for a query parameter its route does not take, so that a caller can fall
// back when it talks to a member older than the parameter.
func IsUnknownQueryParameter(err error, name string) bool {
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusBadRequest {
		return false
	}
	for _, d := range ae.Errors {
		if d.Location == "querystring" && d.Name == name && d.Description == "unknown query parameter" {
			return true
		}
	}
	return false
}

// do sends one request and decodes a 2xx answer into out (nil: ignore the
// body). The Meta is filled whenever an answer arrived, errors included.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any, opts []CallOptions) (Meta, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Meta{}, fmt.Errorf("wimms client: encode %s %s: %w", method, path, err)
		}
		payload = b
	}
	resp, data, err := c.send(ctx, method, path, query, payload, opts)
	if err != nil {
		return Meta{}, err
	}
	meta := metaFrom(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return meta, decodeAPIError(resp, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return meta, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return meta, fmt.Errorf("wimms client: decode answer of %s %s: %w", method, path, err)
	}
	return meta, nil
}

// Raw sends one request as given and returns the answer's status, headers
// and body whatever the status: for tests of the HTTP contract itself
// (malformed bodies, exact error shapes), which the typed calls never
// send. pathAndQuery is e.g. "/v1/services?consistency=stale"; body is
// sent as JSON when not nil. Only a call that got no answer is an error.
func (c *Client) Raw(ctx context.Context, method, pathAndQuery string, body []byte, opts ...CallOptions) (Meta, []byte, error) {
	resp, data, err := c.send(ctx, method, pathAndQuery, nil, body, opts)
	if err != nil {
		return Meta{}, nil, err
	}
	return metaFrom(resp), data, nil
}

// send makes one call and reads its answer (at most maxAnswerBytes).
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body []byte, opts []CallOptions) (*http.Response, []byte, error) {
	var o CallOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Consistency != "" || o.MaxStaleness != 0 {
		if query == nil {
			query = url.Values{}
		}
		if o.Consistency != "" {
			query.Set("consistency", o.Consistency)
		}
		if o.MaxStaleness != 0 {
			query.Set("max_staleness", o.MaxStaleness.String())
		}
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	timeout := c.timeout
	if o.Timeout != 0 {
		timeout = o.Timeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	sent := new(atomic.Bool)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { sent.Store(true) }})
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("wimms client: build %s %s: %w", method, path, err)
	}
	for k, vs := range o.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if o.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", o.IdempotencyKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, &TransportError{Method: method, Path: path, Sent: sent.Load(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		// The status line arrived, so the server acted; the answer is lost.
		return nil, nil, &TransportError{Method: method, Path: path, Sent: true,
			Err: fmt.Errorf("read body of %d answer: %w", resp.StatusCode, err)}
	}
	return resp, data, nil
}

func decodeAPIError(resp *http.Response, data []byte) error {
	ae := &APIError{HTTPStatus: resp.StatusCode, Header: resp.Header}
	var body wire.ErrorBody
	if err := json.Unmarshal(data, &body); err == nil && body.Status != "" {
		ae.Status, ae.Errors = body.Status, body.Errors
		return ae
	}
	snippet := string(data)
	if len(snippet) > 200 {
		snippet = snippet[:200]
	}
	ae.Errors = []wire.ErrorDetail{{Location: "body", Name: "", Description: snippet}}
	return ae
}

// segment escapes one path segment. Dot segments are escaped too, since
// some HTTP stacks resolve "." and ".." before the server sees them.
func segment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}
