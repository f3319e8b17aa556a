package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/store"
)

// ForwardedHeader names the members a request was forwarded through, in
// order, comma-separated (the first hop is just the forwarding member's id).
const ForwardedHeader = "X-Wimms-Forwarded"

// maxForwardHops stops forwarding loops between members with stale views
// of who leads. Two hops are legitimate (follower → old leader that has
// just handed over → new leader); a third is refused.
const maxForwardHops = 3

// dialError marks a failure to connect: no byte of the request left this
// member, so it is the one error after which a write may be retried.
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string { return fmt.Sprintf("dial %s: %v", e.addr, e.err) }
func (e *dialError) Unwrap() error { return e.err }

// newHTTPTransport is the one pooled transport for all member-to-member
// HTTP: keep-alive connections dialed from this member's own IP (see
// boundTransport for why).
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

// baseURL is how member-to-member calls address the member at addr.
func (c *Cluster) baseURL(addr string) string {
	if c.cfg.DialTLS != nil {
		return "https://" + addr
	}
	return "http://" + addr
}

// hopHeaders are connection-level headers a relay must not pass on
// (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func copyEndToEndHeaders(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append([]string(nil), vv...)
	}
	for _, f := range src.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			dst.Del(strings.TrimSpace(name))
		}
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
}

func isRead(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// Forward relays r to the leader and copies the leader's status, headers
// and body to w unchanged. It waits up to LeaderWait for a leader whose
// HTTP address is known; it retries only after a failed dial (nothing was
// sent). Once bytes may have reached the leader, a failure is 504
// unknown-outcome for a write and 503 no-leader for a read: a write is
// never sent twice.
func (c *Cluster) Forward(w http.ResponseWriter, r *http.Request, body []byte) {
	chain := forwardChain(r.Header.Get(ForwardedHeader))
	if len(chain) >= maxForwardHops {
		c.writeError(w, r, http.StatusServiceUnavailable, "not-leader",
			fmt.Sprintf("forwarded %d times (%s) without reaching the leader; leadership is changing", len(chain), strings.Join(chain, ",")))
		return
	}
	deadline := time.Now().Add(c.cfg.LeaderWait)
	backoff := 20 * time.Millisecond
	var lastDialErr error
	for {
		leaderID, addr, err := c.awaitLeaderHTTP(r.Context(), deadline)
		if err != nil {
			desc := fmt.Sprintf("no leader known after waiting %s", c.cfg.LeaderWait)
			if lastDialErr != nil {
				desc = fmt.Sprintf("the leader could not be reached within %s: %v", c.cfg.LeaderWait, lastDialErr)
			}
			c.writeError(w, r, http.StatusServiceUnavailable, "no-leader", desc)
			return
		}
		err = c.forwardOnce(w, r, body, addr, append(chain, c.cfg.ID))
		if err == nil {
			return
		}
		var de *dialError
		if errors.As(err, &de) {
			lastDialErr = err
			c.log.Debug("forward: leader not reachable, nothing sent; retrying", "leader", leaderID, "addr", addr, "error", err)
			if r.Context().Err() != nil || time.Now().Add(backoff).After(deadline) || !sleepCtx(r.Context(), backoff) {
				c.writeError(w, r, http.StatusServiceUnavailable, "no-leader",
					fmt.Sprintf("the leader %s at %s could not be reached within %s: %v", leaderID, addr, c.cfg.LeaderWait, err))
				return
			}
			backoff = min(2*backoff, 250*time.Millisecond)
			continue
		}
		c.log.Warn("forward failed after the request may have reached the leader",
			"leader", leaderID, "addr", addr, "method", r.Method, "path", r.URL.Path, "error", err)
		if isRead(r.Method) {
			c.writeError(w, r, http.StatusServiceUnavailable, "no-leader",
				fmt.Sprintf("forwarding the read to the leader %s at %s failed: %v", leaderID, addr, err))
			return
		}
		c.writeError(w, r, http.StatusGatewayTimeout, "unknown-outcome",
			fmt.Sprintf("the write was forwarded to the leader %s at %s and its outcome is unknown (%v); it was not retried: read before writing again, or retry with the same Idempotency-Key", leaderID, addr, err))
		return
	}
}

func forwardChain(h string) []string {
	var out []string
	for _, id := range strings.Split(h, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// forwardOnce sends r once. A nil error means w holds the leader's answer.
func (c *Cluster) forwardOnce(w http.ResponseWriter, r *http.Request, body []byte, addr string, chain []string) error {
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.ForwardTimeout)
	defer cancel()
	u, err := url.Parse(c.baseURL(addr) + r.URL.RequestURI())
	if err != nil {
		return fmt.Errorf("leader url: %w", err)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("build forwarded request: %w", err)
	}
	copyEndToEndHeaders(out.Header, r.Header)
	out.Header.Del("Content-Length")
	out.Header.Set(ForwardedHeader, strings.Join(chain, ","))
	if len(body) > 0 || !isRead(r.Method) {
		// A body without GetBody makes net/http treat the request as not
		// replayable: it never re-sends it on its own after a connection
		// breaks mid-request, not even with an Idempotency-Key.
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = nil
	}
	resp, err := c.client.Do(out)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for k := range w.Header() {
		delete(w.Header(), k)
	}
	copyEndToEndHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		// The status is out; the truncated body tells the client.
		c.log.Warn("forward: relaying the leader's answer failed", "addr", addr, "path", r.URL.Path, "status", resp.StatusCode, "error", err)
		return nil
	}
	return nil
}

// awaitLeaderHTTP polls until a leader with a known HTTP address is known,
// or deadline.
func (c *Cluster) awaitLeaderHTTP(ctx context.Context, deadline time.Time) (id, httpAddr string, err error) {
	wait := 10 * time.Millisecond
	for {
		id, raftAddr := c.st.Leader()
		if id != c.cfg.ID || c.st.IsLeader() {
			if addr, ok := c.leaderHTTPAddr(id, raftAddr); ok {
				return id, addr, nil
			}
		}
		if !time.Now().Add(wait).Before(deadline) {
			if id == "" && raftAddr == "" {
				return "", "", store.ErrNoLeader
			}
			return "", "", fmt.Errorf("the http address of leader %q (%s) is unknown: %w", id, raftAddr, store.ErrNoLeader)
		}
		if !sleepCtx(ctx, wait) {
			return "", "", ctx.Err()
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// leaderHTTPAddr finds a member's HTTP address: its own config, gossip
// metadata or what a join request or a /v1/cluster answer told us.
func (c *Cluster) leaderHTTPAddr(id, raftAddr string) (string, bool) {
	if id == "" && raftAddr == "" {
		return "", false
	}
	if id == c.cfg.ID || (id == "" && raftAddr == c.cfg.RaftAddr) {
		return c.cfg.HTTPAddr, true
	}
	if p, ok := c.peers.get(id); ok && p.meta.HTTP != "" {
		return p.meta.HTTP, true
	}
	if raftAddr != "" {
		if p, ok := c.peers.byRaftAddr(raftAddr); ok && p.meta.HTTP != "" {
			return p.meta.HTTP, true
		}
	}
	return "", false
}

// errorBody is the API's error shape (API.md "Errors").
type errorBody struct {
	Status string        `json:"status"`
	Errors []errorDetail `json:"errors"`
}

type errorDetail struct {
	Location    string `json:"location"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// writeError answers for this member itself, with the X-Wimms-* headers
// every answer carries.
func (c *Cluster) writeError(w http.ResponseWriter, r *http.Request, code int, status, description string) {
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	meta := c.st.Meta()
	h.Set("Content-Type", "application/json")
	h.Set("X-Wimms-Index", strconv.FormatUint(meta.Index, 10))
	h.Set("X-Wimms-Member", c.cfg.ID)
	if isRead(r.Method) {
		h.Set("X-Wimms-Known-Leader", strconv.FormatBool(meta.KnownLeader))
		h.Set("X-Wimms-Last-Contact", strconv.FormatInt(meta.LastContactMs, 10))
	}
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	name, location := "leader", "header"
	if status == "unauthorized" {
		name = "Authorization"
	}
	b, _ := json.Marshal(errorBody{Status: status, Errors: []errorDetail{{Location: location, Name: name, Description: description}}})
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// InternalRoutes mounts the member-to-member endpoints:
// GET /internal/v1/readindex → {"index": n} on the leader (after it has
// confirmed leadership with a quorum), 503 not-leader elsewhere.
func (c *Cluster) InternalRoutes(r *mux.Router) {
	r.HandleFunc("/internal/v1/readindex", c.serveReadIndex).Methods(http.MethodGet)
}

type readIndexAnswer struct {
	Index uint64 `json:"index"`
}

func (c *Cluster) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	if !c.authorized(r) {
		c.writeError(w, r, http.StatusUnauthorized, "unauthorized", "a member token is required")
		return
	}
	if !c.st.IsLeader() {
		c.writeError(w, r, http.StatusServiceUnavailable, "not-leader", "this member is not the leader")
		return
	}
	idx, err := c.st.ReadIndex(r.Context())
	switch {
	case errors.Is(err, store.ErrNotLeader):
		c.writeError(w, r, http.StatusServiceUnavailable, "not-leader", err.Error())
		return
	case err != nil:
		c.writeError(w, r, http.StatusServiceUnavailable, "no-leader", fmt.Sprintf("leadership could not be confirmed: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Wimms-Member", c.cfg.ID)
	_ = json.NewEncoder(w).Encode(readIndexAnswer{Index: idx})
}

// authorized accepts either configured token; with none configured the
// internal endpoints are open like the rest of the API.
func (c *Cluster) authorized(r *http.Request) bool {
	if c.cfg.APIToken == "" && c.cfg.AdminToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	for _, want := range []string{c.cfg.APIToken, c.cfg.AdminToken} {
		if want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
			return true
		}
	}
	return false
}

// memberToken is sent on member-to-member reads; adminToken on mutations
// (API.md "Auth").
func (c *Cluster) memberToken() string {
	if c.cfg.APIToken != "" {
		return c.cfg.APIToken
	}
	return c.cfg.AdminToken
}

func (c *Cluster) adminToken() string {
	if c.cfg.AdminToken != "" {
		return c.cfg.AdminToken
	}
	return c.cfg.APIToken
}

// remoteReadIndex asks the leader for its read index (installed into the
// store by Start): a follower's linearizable read waits for that index.
func (c *Cluster) remoteReadIndex(ctx context.Context) (uint64, error) {
	id, raftAddr := c.st.Leader()
	if id == "" && raftAddr == "" {
		return 0, fmt.Errorf("remote read index: %w", store.ErrNoLeader)
	}
	if id == c.cfg.ID && c.st.IsLeader() {
		return c.st.ReadIndex(ctx)
	}
	addr, ok := c.leaderHTTPAddr(id, raftAddr)
	if !ok {
		return 0, fmt.Errorf("remote read index: http address of leader %q unknown: %w", id, store.ErrNoLeader)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL(addr)+"/internal/v1/readindex", nil)
	if err != nil {
		return 0, fmt.Errorf("remote read index: %w", err)
	}
	if tok := c.memberToken(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set(ForwardedHeader, c.cfg.ID)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("remote read index from leader %s at %s: %w: %w", id, addr, store.ErrNoLeader, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, fmt.Errorf("remote read index from leader %s at %s: read answer: %w: %w", id, addr, store.ErrNoLeader, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var a readIndexAnswer
		if err := json.Unmarshal(b, &a); err != nil {
			return 0, fmt.Errorf("remote read index from leader %s at %s: decode %q: %w", id, addr, b, err)
		}
		return a.Index, nil
	case http.StatusServiceUnavailable:
		// Leadership moved since we looked: to the caller, no leader yet.
		return 0, fmt.Errorf("remote read index: %s at %s answered %s: %w", id, addr, bytes.TrimSpace(b), store.ErrNoLeader)
	}
	return 0, fmt.Errorf("remote read index: %s at %s answered %d: %s", id, addr, resp.StatusCode, bytes.TrimSpace(b))
}
