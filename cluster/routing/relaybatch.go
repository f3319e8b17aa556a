package routing

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// Batched relaying: a follower sends the writes that arrive while earlier
// ones are on their way to the leader together, in one member-to-member
// request, instead of one HTTP exchange each. Under load that is most of
// the forwarding cost on both sides (a follower's socket writes and reads,
// the leader's per-request parsing and answering); the leader still runs
// every write through its own API handler, exactly as if it had been
// relayed alone, and proposes them concurrently, so Raft commits them in
// one batch anyway.
//
// The batch is HTTP/1.1 inside HTTP: the body of POST /internal/v1/relay
// is the relayed requests one after the other in HTTP/1.1 wire format,
// each with a Content-Length, and the answer's body is their answers in
// the same order and format. Go's own parsers (http.ReadRequest,
// http.ReadResponse) read both, so a member never hand-parses bytes it got
// from the network.
//
// Outcomes keep the rules of a single relay:
//   - the leader answers anything but 200 only before it has run any of
//     the requests (bad batch, not authorised, an older leader without the
//     endpoint): each request is then relayed alone, as before batching;
//   - a dial that failed sent nothing: the batch is retried, as one relay is;
//   - once the batch may have reached the leader, a failure means every
//     request of it whose answer did not come back gets 504
//     unknown-outcome: a write is never sent twice.

// relayBatchPath is the leader's batch endpoint.
const relayBatchPath = "/internal/v1/relay"

// relayBatchContentType marks a batch of HTTP/1.1 messages.
const relayBatchContentType = "application/x-wimms-relay-batch"

const (
	// maxRelayBatch is the most requests one batch carries, and what the
	// leader accepts.
	maxRelayBatch = 64
	// maxRelaySenders is how many batches a follower has on their way to
	// the leader at once. A write that arrives while all are busy waits for
	// the next batch; while one is free it leaves at once, alone, so an
	// idle member adds no delay.
	maxRelaySenders = 4
	// maxRelayBatchBytes bounds a batch's body on the leader: every
	// request at the API's body limit plus generous headers.
	maxRelayBatchBytes = maxRelayBatch * (wire.MaxBodyBytes + 64<<10)
	// relayBatchRetryAfter is how long a follower relays writes one by one
	// after a leader answered the batch endpoint 404 (a leader of an older
	// version during a rolling upgrade) before it tries batching again.
	relayBatchRetryAfter = time.Minute
)

// errBatchRefused: the leader answered the batch with a status other than
// 200, which it does only before running any request of it.
var errBatchRefused = errors.New("the leader refused the batch before running it")

// relayCall is one write waiting in, or carried by, a batch.
type relayCall struct {
	r    *http.Request
	body []byte
	done chan struct{} // closed when exactly one of the outcomes below is set

	answer     *http.Response // the leader's answer; its body is answerBody
	answerBody []byte
	failure    *routeError // this member's own answer instead
	relaySolo  bool        // nothing was run: relay the request alone
}

// relayQueue gathers the writes waiting for a batch.
type relayQueue struct {
	mu       sync.Mutex
	waiting  []*relayCall
	senders  int
	soloTill time.Time // batching is off until then (an older leader)
	// closed: Router.Close has begun; no sender starts any more, and
	// Close waits for the running ones (running), whose context has ended.
	closed  bool
	running sync.WaitGroup
}

// close stops new senders and waits for the running ones, whose batches
// end with the context New was given (the member's, cancelled first).
func (q *relayQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.running.Wait()
}

// relayBatched relays the write r to the leader in a batch with the
// writes that wait with it, and copies the leader's answer to w.
func (rt *Router) relayBatched(w http.ResponseWriter, r *http.Request, body []byte) {
	call := &relayCall{r: r, body: body, done: make(chan struct{})}
	if !rt.enqueueRelay(call) {
		rt.relay(w, r, body, wire.RelayWrite)
		return
	}
	select {
	case <-call.done:
	case <-r.Context().Done():
		// The client has gone; the write may still run on the leader.
		rt.writeRouteError(w, errUnknownOutcome("the request was cancelled while it was being relayed to the leader; its outcome is unknown"), false)
		return
	}
	switch {
	case call.relaySolo:
		rt.relay(w, r, body, wire.RelayWrite)
	case call.failure != nil:
		rt.writeRouteError(w, *call.failure, false)
	default:
		h := w.Header()
		for k := range h {
			delete(h, k)
		}
		copyEndToEndHeaders(h, call.answer.Header)
		h.Del("Content-Length")
		w.WriteHeader(call.answer.StatusCode)
		_, _ = w.Write(call.answerBody)
	}
}

// enqueueRelay queues call for the next batch and starts a sender if one
// is free; false when batching is off (the leader is of an older version,
// or this member is closing: the request is then relayed alone, on its own
// context).
func (rt *Router) enqueueRelay(call *relayCall) bool {
	q := &rt.relays
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || rt.now().Before(q.soloTill) {
		return false
	}
	q.waiting = append(q.waiting, call)
	if q.senders < maxRelaySenders {
		q.senders++
		q.running.Add(1)
		go func() {
			defer q.running.Done()
			rt.sendRelayBatches(rt.ctx)
		}()
	}
	return true
}

// sendRelayBatches sends what waits, batch after batch, until nothing
// does. ctx ends when the member stops: what is on its way then is answered
// unknown-outcome, what waits is answered no-leader (never sent).
func (rt *Router) sendRelayBatches(ctx context.Context) {
	q := &rt.relays
	for {
		q.mu.Lock()
		n := min(len(q.waiting), maxRelayBatch)
		if n == 0 {
			q.senders--
			q.mu.Unlock()
			return
		}
		calls := make([]*relayCall, 0, n)
		for _, call := range q.waiting[:n] {
			// A caller that has gone was answered already; never sent.
			if call.r.Context().Err() == nil {
				calls = append(calls, call)
			}
		}
		q.waiting = append(q.waiting[:0:0], q.waiting[n:]...)
		q.mu.Unlock()
		if len(calls) > 0 {
			rt.relayBatch(ctx, calls)
		}
	}
}

// relayBatch delivers calls to the leader and settles every one of them.
func (rt *Router) relayBatch(ctx context.Context, calls []*relayCall) {
	settled := 0
	fail := func(e routeError) {
		for _, call := range calls[settled:] {
			call.failure = &e
			close(call.done)
		}
	}
	leaderID, addr, err := rt.toLeader(ctx, func(addr string) error {
		n, err := rt.sendRelayBatch(ctx, calls, addr)
		settled = n
		return err
	})
	var unreachable *leaderUnreachable
	switch {
	case err == nil:
	case errors.Is(err, errBatchRefused):
		for _, call := range calls[settled:] {
			call.relaySolo = true
			close(call.done)
		}
	case errors.As(err, &unreachable):
		fail(errNoLeader(unreachable.desc))
	default:
		rt.log.Warn("forward: a batch failed after it may have reached the leader",
			"leader", leaderID, "addr", addr, "requests", len(calls), "answered", settled, "error", err)
		fail(errUnknownOutcome(unknownOutcomeDesc(leaderID, addr, err)))
	}
}

// sendRelayBatch sends calls to the leader at addr in one request and
// settles each call whose answer came back, in order; it returns how many
// it settled. errBatchRefused: nothing was run, nothing settled.
func (rt *Router) sendRelayBatch(ctx context.Context, calls []*relayCall, addr string) (int, error) {
	var buf bytes.Buffer
	for _, call := range calls {
		writeRelayedRequest(&buf, call.r, call.body, addr, rt.cfg.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, rt.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.members.URL(addr, relayBatchPath), nil)
	if err != nil {
		return 0, fmt.Errorf("build relay batch: %w", err)
	}
	// As in relayOnce: no GetBody, so net/http never re-sends it itself.
	req.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	req.ContentLength = int64(buf.Len())
	req.Header.Set("Content-Type", relayBatchContentType)
	req.Header.Set(ForwardedHeader, rt.cfg.ID)
	rt.members.SetAuth(req, false)
	rt.relayMetrics.batches.Inc()
	rt.relayMetrics.writes.Add(float64(len(calls)))
	resp, err := rt.members.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode == http.StatusNotFound {
			rt.relays.mu.Lock()
			rt.relays.soloTill = rt.now().Add(relayBatchRetryAfter)
			rt.relays.mu.Unlock()
			rt.log.Info("forward: the leader has no batch endpoint (an older version?); relaying writes one by one for a while", "addr", addr)
		}
		return 0, fmt.Errorf("%w: status %d", errBatchRefused, resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for i, call := range calls {
		answer, body, err := readRelayedAnswer(br, call.r)
		if err != nil {
			return i, fmt.Errorf("reading answer %d of %d: %w", i+1, len(calls), err)
		}
		call.answer, call.answerBody = answer, body
		close(call.done)
	}
	return len(calls), nil
}

// writeRelayedRequest appends r in HTTP/1.1 wire format, marked as relayed
// by this member, with the end-to-end headers a single relay passes on.
func writeRelayedRequest(buf *bytes.Buffer, r *http.Request, body []byte, host, self string) {
	fmt.Fprintf(buf, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, r.URL.RequestURI(), host)
	h := make(http.Header, len(r.Header)+2)
	copyEndToEndHeaders(h, r.Header)
	h.Del("Content-Length")
	h.Set(ForwardedHeader, self)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_ = h.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(body)
}

// readRelayedAnswer reads one answer of a batch, body included.
func readRelayedAnswer(br *bufio.Reader, req *http.Request) (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRelayBatchBytes))
	if err != nil {
		return nil, nil, err
	}
	return resp, body, nil
}

// serveRelayBatch is the leader's half: it runs every request of a batch
// through this member's own API handler, concurrently (Raft commits their
// proposals together), and answers with their answers in order.
func (rt *Router) serveRelayBatch(w http.ResponseWriter, r *http.Request) {
	if !rt.members.Authorized(r) {
		rt.writeRouteError(w, routeError{code: http.StatusUnauthorized, status: wire.StatusUnauthorized, name: "Authorization", desc: "a member token is required"}, false)
		return
	}
	if rt.local == nil {
		rt.writeRouteError(w, errNotLeader("this member cannot run relayed batches"), false)
		return
	}
	subs, err := readRelayBatch(r)
	if err != nil {
		rt.writeRouteError(w, routeError{code: http.StatusBadRequest, status: fsm.StatusBadRequest, name: "body", desc: err.Error()}, false)
		return
	}
	// The follower may give up on the batch (its forward timeout, its
	// shutdown); the writes in it may be proposed already and run to the
	// end regardless, bounded by the store's apply timeout: their outcome
	// is not delivered, which the follower reports as unknown.
	ctx := context.WithoutCancel(r.Context())
	answers := make([]*relayAnswer, len(subs))
	var wg sync.WaitGroup
	for i, sub := range subs {
		answers[i] = newRelayAnswer()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					rt.log.Error("relayed request panicked", "method", sub.Method, "path", sub.URL.Path, "panic", v)
					answers[i] = newRelayAnswer()
					answers[i].WriteHeader(http.StatusInternalServerError)
				}
			}()
			rt.local.ServeHTTP(answers[i], sub.WithContext(ctx))
		}()
	}
	wg.Wait()
	var buf bytes.Buffer
	for _, a := range answers {
		a.writeTo(&buf)
	}
	w.Header().Set("Content-Type", relayBatchContentType)
	w.Header().Set(wire.HeaderMember, rt.cfg.ID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// readRelayBatch parses a whole batch before anything runs, so a bad one
// is refused as a whole.
func readRelayBatch(r *http.Request) ([]*http.Request, error) {
	if ct := r.Header.Get("Content-Type"); ct != relayBatchContentType {
		return nil, fmt.Errorf("a relay batch must be %s, not %q", relayBatchContentType, ct)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRelayBatchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the batch: %w", err)
	}
	if len(raw) > maxRelayBatchBytes {
		return nil, fmt.Errorf("the batch exceeds %d bytes", maxRelayBatchBytes)
	}
	from := r.Header.Get(ForwardedHeader)
	br := bufio.NewReader(bytes.NewReader(raw))
	var subs []*http.Request
	for {
		if _, err := br.Peek(1); err == io.EOF {
			break
		}
		if len(subs) == maxRelayBatch {
			return nil, fmt.Errorf("the batch holds more than %d requests", maxRelayBatch)
		}
		sub, err := http.ReadRequest(br)
		if err != nil {
			return nil, fmt.Errorf("request %d of the batch: %w", len(subs)+1, err)
		}
		if isRead(sub.Method) || isJoin(sub) || strings.HasPrefix(sub.URL.Path, "/internal/") {
			return nil, fmt.Errorf("request %d of the batch: %s %s cannot be relayed in a batch", len(subs)+1, sub.Method, sub.URL.Path)
		}
		body, err := io.ReadAll(io.LimitReader(sub.Body, wire.MaxBodyBytes+1))
		if err != nil {
			return nil, fmt.Errorf("request %d of the batch: body: %w", len(subs)+1, err)
		}
		sub.Body = io.NopCloser(bytes.NewReader(body))
		sub.ContentLength = int64(len(body))
		sub.RemoteAddr = r.RemoteAddr
		sub.Header.Set(ForwardedHeader, from)
		subs = append(subs, sub.WithContext(r.Context()))
	}
	if len(subs) == 0 {
		return nil, errors.New("the batch holds no request")
	}
	return subs, nil
}

// relayAnswer records one answer of a batch on the leader.
type relayAnswer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func newRelayAnswer() *relayAnswer { return &relayAnswer{header: http.Header{}} }

func (a *relayAnswer) Header() http.Header { return a.header }

func (a *relayAnswer) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

func (a *relayAnswer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(p)
}

// writeTo appends the answer in HTTP/1.1 wire format.
func (a *relayAnswer) writeTo(buf *bytes.Buffer) {
	code := a.code
	if code == 0 {
		code = http.StatusOK
	}
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	a.header.Del("Transfer-Encoding")
	a.header.Set("Content-Length", strconv.Itoa(a.body.Len()))
	_ = a.header.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(a.body.Bytes())
}
