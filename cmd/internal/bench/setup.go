package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// nodeCapacity is large enough that no run fills a node: with the default
// release rate 0.1 each node starts with 10^8 slots released, so allocation
// never pauses for a capacity release (which would measure the release
// path, not allocation).
const nodeCapacity = 1_000_000_000

// servicePattern fills in like the token server's sync endpoints.
const servicePattern = "{node}/1.5/{uid}"

// setupAttempts bounds retries of one setup request. Setup right after a
// cluster starts may meet an election; every setup write is idempotent
// (PUT service, node add answering 409 when present, allocate = get or
// create), so repeating one cannot create anything twice.
const setupAttempts = 40

// highWater is the highest X-Wimms-Index seen in setup answers.
type highWater struct{ v atomic.Uint64 }

func (h *highWater) observe(i uint64) {
	for {
		cur := h.v.Load()
		if i <= cur || h.v.CompareAndSwap(cur, i) {
			return
		}
	}
}

func retryable(r client.Answer, err error) bool {
	return err != nil || r.Code == http.StatusServiceUnavailable
}

// doSetup sends one setup request, retrying while the cluster cannot serve.
func doSetup(ctx context.Context, rq *client.Requester, method, url string, body []byte, keepBody bool) (client.Answer, error) {
	var r client.Answer
	var err error
	// body may live in rq's buffer, which the next attempt reuses: keep a
	// copy and give every attempt its own.
	var own []byte
	if body != nil {
		own = append([]byte(nil), body...)
	}
	for attempt := 0; attempt < setupAttempts; attempt++ {
		var send []byte
		if own != nil {
			send = append(rq.Buffer(), own...)
		}
		r, err = rq.Do(method, url, "", send, keepBody)
		if !retryable(r, err) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("%s %s: %w", method, url, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return r, fmt.Errorf("%s %s: gave up after %d attempts: %w", method, url, setupAttempts, err)
	}
	return r, apiError(fmt.Sprintf("%s %s: gave up after %d attempts", method, url, setupAttempts), r)
}

// setupServiceAndNodes creates the service and cfg.Nodes nodes, or accepts
// them when a previous run already did.
func setupServiceAndNodes(ctx context.Context, api *api, cfg *Config, mark *highWater) error {
	rq := api.newRequester(ctx, cfg.Addrs[0])
	p := newPaths(cfg.Service)
	body, _ := json.Marshal(map[string]string{"pattern": servicePattern})
	r, err := doSetup(ctx, rq, http.MethodPut, p.service, body, true)
	if err != nil {
		return fmt.Errorf("creating service %s: %w", cfg.Service, err)
	}
	if r.Code != http.StatusOK && r.Code != http.StatusCreated {
		return apiError("creating service "+cfg.Service, r)
	}
	mark.observe(r.Index)
	for i := 1; i <= cfg.Nodes; i++ {
		url := "https://bench-node-" + strconv.Itoa(i) + ".invalid"
		body, _ := json.Marshal(map[string]any{"node": url, "capacity": nodeCapacity})
		r, err := doSetup(ctx, rq, http.MethodPost, p.nodes, body, true)
		if err != nil {
			return fmt.Errorf("adding node %s: %w", url, err)
		}
		if r.Code != http.StatusCreated && r.Code != http.StatusConflict {
			return apiError("adding node "+url, r)
		}
		mark.observe(r.Index)
	}
	return nil
}

// apiUser is the part of docs/api.md's user object the bench reads.
type apiUser struct {
	Email         string `json:"email"`
	Generation    int64  `json:"generation"`
	KeysChangedAt *int64 `json:"keys_changed_at"`
	ClientState   string `json:"client_state"`
}

// setupUserEmail names the prepared users; stable across runs so that a
// second run against the same cluster reuses them (allocate is get or
// create and answers their current state).
func setupUserEmail(i int) string {
	return "bench-user-" + strconv.Itoa(i) + "@bench.invalid"
}

// prepareUsers get-or-creates cfg.Users users with all workers in parallel
// and hands user i to worker i % len(workers): in the mix workload only its
// owner signs a user in, so each client's view of its users stays exact.
func prepareUsers(ctx context.Context, api *api, workers []*worker, cfg *Config, mark *highWater, progress func(int64)) ([]*benchUser, error) {
	all := make([]*benchUser, cfg.Users)
	var done atomic.Int64
	var wg sync.WaitGroup
	// Only the first failure is worth reporting: the others are the
	// cancellations it caused.
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wi, w := range workers {
		w.rq = api.newRequester(ctx, w.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := wi; i < cfg.Users; i += len(workers) {
				u, err := prepareUser(ctx, w, setupUserEmail(i), mark)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					cancel()
					return
				}
				all[i] = u
				if cfg.Workload == WorkloadMix && u.generation != maxGeneration {
					w.owned = append(w.owned, u)
				}
				if progress != nil {
					progress(done.Add(1))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("preparing %d users: %w", cfg.Users, firstErr)
	}
	return all, nil
}

func prepareUser(ctx context.Context, w *worker, email string, mark *highWater) (*benchUser, error) {
	now := time.Now().UnixMilli()
	cs := w.newClientState()
	r, err := doSetup(ctx, w.rq, http.MethodPost, w.paths.users, w.allocBody(email, now, now, cs), true)
	if err != nil {
		return nil, fmt.Errorf("allocating %s: %w", email, err)
	}
	if r.Code != http.StatusOK && r.Code != http.StatusCreated {
		return nil, apiError("allocating "+email, r)
	}
	mark.observe(r.Index)
	var got apiUser
	if err := json.Unmarshal(r.Body, &got); err != nil {
		return nil, fmt.Errorf("decoding user %s: %w", email, err)
	}
	if got.Email != email {
		return nil, fmt.Errorf("allocating %s: answer is for %q", email, got.Email)
	}
	u := newBenchUser(w.paths, email)
	u.generation, u.clientState = got.Generation, got.ClientState
	if got.KeysChangedAt != nil {
		u.keysChangedAt = *got.KeysChangedAt
	}
	return u, nil
}

// catchUpTimeout bounds waitApplied per member.
const catchUpTimeout = 30 * time.Second

// waitApplied waits until every member has applied the setup's writes.
// Without it a stale lookup right after setup reads a follower that has not
// applied the last users yet and measures 404s, not reads. A member that
// does not catch up in time is logged and the run goes on: the bench
// measures what the cluster does, it does not refuse to.
func waitApplied(ctx context.Context, api *api, cfg *Config, index uint64) {
	if index == 0 {
		return // the server does not report indexes: nothing to wait for
	}
	path := newPaths(cfg.Service).service
	for _, addr := range cfg.Addrs {
		rq := api.newRequester(ctx, addr)
		deadline := time.Now().Add(catchUpTimeout)
		var seen uint64
		for seen < index {
			r, err := rq.Do(http.MethodGet, path, "consistency=stale", nil, false)
			if err == nil && r.Code == http.StatusOK {
				seen = r.Index
			}
			if seen >= index {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				cfg.Logger.Warn("member has not applied the setup writes; stale reads on it may miss users",
					"member", addr, "applied", seen, "want", index, "error", err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
