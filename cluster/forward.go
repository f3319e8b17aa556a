package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/internal/ctxtime"
	"github.com/wimms-dev/wimms/store"
)

// dialError marks a failure to connect: no byte of the request left this
// member, so it is the one error after which a write may be retried.
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string { return fmt.Sprintf("dial %s: %v", e.addr, e.err) }
func (e *dialError) Unwrap() error { return e.err }

// newMemberClient is the one HTTP client for all member-to-member requests
// (relayed requests, joins, read indexes, status) and its pooled transport.
// With dialTLS set (mutual TLS between members), every connection is a
// verified TLS connection.
func newMemberClient(localIP net.IP, dialTLS func(context.Context, *net.Dialer, string, string) (*tls.Conn, error)) (*http.Client, *http.Transport) {
	tr := newHTTPTransport(localIP, dialTLS)
	return &http.Client{
		Transport: tr,
		// The leader's redirects, if any, are relayed to the client as they are.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, tr
}

// newHTTPTransport: keep-alive connections dialed from this member's own
// IP (see boundTransport for why).
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

// leaderUnreachable: no leader could be reached within LeaderWait and
// nothing was sent to one.
type leaderUnreachable struct{ desc string }

func (e *leaderUnreachable) Error() string { return e.desc }

// toLeader runs send against the leader's HTTP address. It waits up to
// LeaderWait for a leader whose HTTP address is known and retries only
// after a failed dial (nothing was sent). A *leaderUnreachable error means
// nothing reached a leader; any other error is
// send's, after which bytes may have reached the leader.
func (c *Cluster) toLeader(ctx context.Context, send func(addr string) error) (leaderID, addr string, err error) {
	deadline := time.Now().Add(c.cfg.LeaderWait)
	backoff := 20 * time.Millisecond
	var lastDialErr error
	for {
		leaderID, addr, err = c.awaitLeaderHTTP(ctx, deadline)
		if err != nil {
			if lastDialErr != nil {
				return "", "", &leaderUnreachable{fmt.Sprintf("the leader could not be reached within %s: %v", c.cfg.LeaderWait, lastDialErr)}
			}
			return "", "", &leaderUnreachable{fmt.Sprintf("no leader known after waiting %s", c.cfg.LeaderWait)}
		}
		if ctx.Err() != nil {
			// Nothing sent yet: say so rather than let send fail after
			// which the outcome would look unknown.
			return "", "", &leaderUnreachable{fmt.Sprintf("stopped before sending to the leader: %v", ctx.Err())}
		}
		err = send(addr)
		var de *dialError
		if !errors.As(err, &de) {
			return leaderID, addr, err
		}
		lastDialErr = err
		c.log.Debug("forward: leader not reachable, nothing sent; retrying", "leader", leaderID, "addr", addr, "error", err)
		if ctx.Err() != nil || time.Now().Add(backoff).After(deadline) || !ctxtime.Sleep(ctx, backoff) {
			return "", "", &leaderUnreachable{fmt.Sprintf("the leader %s at %s could not be reached within %s: %v", leaderID, addr, c.cfg.LeaderWait, err)}
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// relay sends r to the leader alone and copies the leader's status,
// headers and body to w unchanged (see toLeader for waiting and retries).
// Once bytes may have reached the leader, a failure is 504 unknown-outcome
// for a request that may change the state (mode.MayChange: a write, a
// join, a token request) and 503 no-leader for a read: such a request is
// never sent twice.
func (c *Cluster) relay(w http.ResponseWriter, r *http.Request, body []byte, mode httpapi.Relay) {
	leaderID, addr, err := c.toLeader(r.Context(), func(addr string) error { return c.relayOnce(w, r, body, addr, mode) })
	read := mode == httpapi.RelayRead
	var unreachable *leaderUnreachable
	switch {
	case err == nil:
	case errors.As(err, &unreachable):
		c.writeRouteError(w, errNoLeader(unreachable.desc), read)
	case !mode.MayChange():
		c.log.Warn("forward failed after the request may have reached the leader",
			"leader", leaderID, "addr", addr, "method", r.Method, "path", r.URL.Path, "error", err)
		c.writeRouteError(w, errNoLeader(fmt.Sprintf("forwarding the read to the leader %s at %s failed: %v", leaderID, addr, err)), read)
	default:
		c.log.Warn("forward failed after the request may have reached the leader",
			"leader", leaderID, "addr", addr, "method", r.Method, "path", r.URL.Path, "relay", mode, "error", err)
		c.writeRouteError(w, errUnknownOutcome(unknownOutcomeDesc(leaderID, addr, err)), read)
	}
}

// unknownOutcomeDesc explains a 504 unknown-outcome.
func unknownOutcomeDesc(leaderID, addr string, err error) string {
	return fmt.Sprintf("the write was forwarded to the leader %s at %s and its outcome is unknown (%v); it was not retried: read before writing again, or retry with the same Idempotency-Key", leaderID, addr, err)
}

// relayOnce sends r once. A nil error means w holds the leader's answer.
func (c *Cluster) relayOnce(w http.ResponseWriter, r *http.Request, body []byte, addr string, mode httpapi.Relay) error {
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
	out.Header.Set(ForwardedHeader, c.cfg.ID)
	if len(body) > 0 || !isRead(r.Method) {
		// (HTTP's rule, not placement: a GET goes without a body.) A body without GetBody makes net/http treat the request as not
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
	var dst io.Writer = w
	var joinAnswer bytes.Buffer
	if mode == httpapi.RelayJoin && resp.StatusCode/100 == 2 {
		dst = io.MultiWriter(w, &joinAnswer)
		defer func() { c.learnJoined(joinAnswer.Bytes()) }()
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		// The status is out; the truncated body tells the client.
		c.log.Warn("forward: relaying the leader's answer failed", "addr", addr, "path", r.URL.Path, "status", resp.StatusCode, "error", err)
		return nil
	}
	return nil
}

// awaitLeaderHTTP waits until a leader with a known HTTP address is
// known, or deadline.
func (c *Cluster) awaitLeaderHTTP(ctx context.Context, deadline time.Time) (id, httpAddr string, err error) {
	return c.awaitLeader(ctx, deadline, func(rs store.RaftStatus) bool { return rs.LeaderID != c.cfg.ID || rs.Leading() })
}

// awaitLeader waits until a leader that accept takes has a known HTTP
// address, or deadline. It looks again only when the store announces a
// leader change or the registry learns addresses: nothing polls.
func (c *Cluster) awaitLeader(ctx context.Context, deadline time.Time, accept func(store.RaftStatus) bool) (id, httpAddr string, err error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		// Take both broadcasts before looking: a change after the look
		// closes one of them.
		leaderChanged, peersChanged := c.st.LeaderChanged(), c.peers.changes()
		rs := c.st.RaftStatus()
		id, raftAddr := rs.LeaderID, rs.LeaderAddr
		if accept(rs) {
			if addr, ok := c.leaderHTTPAddr(id, raftAddr); ok {
				return id, addr, nil
			}
		}
		select {
		case <-leaderChanged:
		case <-peersChanged:
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-timer.C:
			if id == "" && raftAddr == "" {
				return "", "", store.ErrNoLeader
			}
			return "", "", fmt.Errorf("the http address of leader %q (%s) is unknown: %w", id, raftAddr, store.ErrNoLeader)
		}
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

// InternalRoutes mounts the member-to-member endpoints on the API's router
// r, which also runs the requests of relayed batches:
// GET /internal/v1/readindex → {"index": n} on the leader (after it has
// confirmed leadership with a quorum), 503 not-leader elsewhere;
// POST /internal/v1/relay → the answers to a batch of relayed writes
// (relaybatch.go).
func (c *Cluster) InternalRoutes(r *mux.Router) {
	c.local = r
	r.HandleFunc("/internal/v1/readindex", c.serveReadIndex).Methods(http.MethodGet)
	r.HandleFunc(relayBatchPath, c.serveRelayBatch).Methods(http.MethodPost)
}

type readIndexAnswer struct {
	Index uint64 `json:"index"`
}

func (c *Cluster) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	if !c.memberAuthorized(r) {
		c.writeRouteError(w, routeError{code: http.StatusUnauthorized, status: httpapi.StatusUnauthorized, name: "Authorization", desc: "a member token is required"}, true)
		return
	}
	if !c.st.RaftStatus().Leading() {
		c.writeRouteError(w, errNotLeader("this member is not the leader"), true)
		return
	}
	idx, err := c.st.ReadIndex(r.Context())
	switch {
	case errors.Is(err, store.ErrNotLeader):
		c.writeRouteError(w, errNotLeader(err.Error()), true)
		return
	case err != nil:
		c.writeRouteError(w, errNoLeader(fmt.Sprintf("leadership could not be confirmed: %v", err)), true)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Wimms-Member", c.cfg.ID)
	_ = json.NewEncoder(w).Encode(readIndexAnswer{Index: idx})
}

// remoteReadIndex asks the leader for its read index (installed into the
// store by Start): a follower's linearizable read waits for that index.
func (c *Cluster) remoteReadIndex(ctx context.Context) (uint64, error) {
	rs := c.st.RaftStatus()
	id, raftAddr := rs.LeaderID, rs.LeaderAddr
	if !rs.LeaderKnown() {
		return 0, fmt.Errorf("remote read index: %w", store.ErrNoLeader)
	}
	if id == c.cfg.ID && rs.Leading() {
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
	c.setMemberAuth(req, false)
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
