package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/ctxtime"
	"github.com/wimms-dev/wimms/store"
)

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
func (rt *Router) toLeader(ctx context.Context, send func(addr string) error) (leaderID, addr string, err error) {
	deadline := time.Now().Add(rt.cfg.LeaderWait)
	backoff := 20 * time.Millisecond
	var lastDialErr error
	for {
		leaderID, addr, err = rt.awaitLeaderHTTP(ctx, deadline)
		if err != nil {
			if lastDialErr != nil {
				return "", "", &leaderUnreachable{fmt.Sprintf("the leader could not be reached within %s: %v", rt.cfg.LeaderWait, lastDialErr)}
			}
			return "", "", &leaderUnreachable{fmt.Sprintf("no leader known after waiting %s", rt.cfg.LeaderWait)}
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
		rt.log.Debug("forward: leader not reachable, nothing sent; retrying", "leader", leaderID, "addr", addr, "error", err)
		if ctx.Err() != nil || time.Now().Add(backoff).After(deadline) || !ctxtime.Sleep(ctx, backoff) {
			return "", "", &leaderUnreachable{fmt.Sprintf("the leader %s at %s could not be reached within %s: %v", leaderID, addr, rt.cfg.LeaderWait, err)}
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
func (rt *Router) relay(w http.ResponseWriter, r *http.Request, body []byte, mode wire.Relay) {
	leaderID, addr, err := rt.toLeader(r.Context(), func(addr string) error { return rt.relayOnce(w, r, body, addr, mode) })
	read := mode == wire.RelayRead
	var unreachable *leaderUnreachable
	switch {
	case err == nil:
	case errors.As(err, &unreachable):
		rt.writeRouteError(w, errNoLeader(unreachable.desc), read)
	case !mode.MayChange():
		rt.log.Warn("forward failed after the request may have reached the leader",
			"leader", leaderID, "addr", addr, "method", r.Method, "path", r.URL.Path, "error", err)
		rt.writeRouteError(w, errNoLeader(fmt.Sprintf("forwarding the read to the leader %s at %s failed: %v", leaderID, addr, err)), read)
	default:
		rt.log.Warn("forward failed after the request may have reached the leader",
			"leader", leaderID, "addr", addr, "method", r.Method, "path", r.URL.Path, "relay", mode, "error", err)
		rt.writeRouteError(w, errUnknownOutcome(unknownOutcomeDesc(leaderID, addr, err)), read)
	}
}

// unknownOutcomeDesc explains a 504 unknown-outcome.
func unknownOutcomeDesc(leaderID, addr string, err error) string {
	return fmt.Sprintf("the write was forwarded to the leader %s at %s and its outcome is unknown (%v); it was not retried: read before writing again, or retry with the same Idempotency-Key", leaderID, addr, err)
}

// relayOnce sends r once. A nil error means w holds the leader's answer.
func (rt *Router) relayOnce(w http.ResponseWriter, r *http.Request, body []byte, addr string, mode wire.Relay) error {
	ctx, cancel := context.WithTimeout(r.Context(), rt.cfg.ForwardTimeout)
	defer cancel()
	u, err := url.Parse(rt.members.URL(addr, r.URL.RequestURI()))
	if err != nil {
		return fmt.Errorf("leader url: %w", err)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("build forwarded request: %w", err)
	}
	copyEndToEndHeaders(out.Header, r.Header)
	out.Header.Del("Content-Length")
	out.Header.Set(ForwardedHeader, rt.cfg.ID)
	if len(body) > 0 || !isRead(r.Method) {
		// (HTTP's rule, not placement: a GET goes without a body.) A body without GetBody makes net/http treat the request as not
		// replayable: it never re-sends it on its own after a connection
		// breaks mid-request, not even with an Idempotency-Key.
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = nil
	}
	resp, err := rt.members.Do(out)
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
	if mode == wire.RelayJoin && resp.StatusCode/100 == 2 {
		dst = io.MultiWriter(w, &joinAnswer)
		defer func() { rt.learnJoined(joinAnswer.Bytes()) }()
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		// The status is out; the truncated body tells the client.
		rt.log.Warn("forward: relaying the leader's answer failed", "addr", addr, "path", r.URL.Path, "status", resp.StatusCode, "error", err)
		return nil
	}
	return nil
}

// awaitLeaderHTTP waits until a leader with a known HTTP address is
// known, or deadline.
func (rt *Router) awaitLeaderHTTP(ctx context.Context, deadline time.Time) (id, httpAddr string, err error) {
	return rt.AwaitLeader(ctx, deadline, func(rs store.RaftStatus) bool { return rs.LeaderID != rt.cfg.ID || rs.Leading() })
}

// AwaitLeader waits until a leader that accept takes has a known HTTP
// address, or deadline. It looks again only when the store announces a
// leader change or the registry learns addresses: nothing polls. A leader
// removing itself waits for its successor with it.
func (rt *Router) AwaitLeader(ctx context.Context, deadline time.Time, accept func(store.RaftStatus) bool) (id, httpAddr string, err error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		// Take both broadcasts before looking: a change after the look
		// closes one of them.
		leaderChanged, peersChanged := rt.st.LeaderChanged(), rt.peers.Changed()
		rs := rt.st.RaftStatus()
		id, raftAddr := rs.LeaderID, rs.LeaderAddr
		if accept(rs) {
			if addr, ok := rt.leaderHTTPAddr(id, raftAddr); ok {
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

// leaderHTTPAddr finds a member's HTTP address: its own config, or what
// the membership layer knows (gossip metadata, a join request, a
// /v1/cluster answer).
func (rt *Router) leaderHTTPAddr(id, raftAddr string) (string, bool) {
	if id == "" && raftAddr == "" {
		return "", false
	}
	if id == rt.cfg.ID || (id == "" && raftAddr == rt.cfg.RaftAddr) {
		return rt.cfg.HTTPAddr, true
	}
	return rt.peers.HTTPAddr(id, raftAddr)
}
