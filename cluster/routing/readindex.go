package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// readIndexPath is the leader's read-index endpoint.
const readIndexPath = "/internal/v1/readindex"

// InternalRoutes mounts the member-to-member endpoints on the API's router
// r, which also runs the requests of relayed batches:
// GET /internal/v1/readindex → {"index": n} on the leader (after it has
// confirmed leadership with a quorum), 503 not-leader elsewhere;
// POST /internal/v1/relay → the answers to a batch of relayed writes
// (relaybatch.go).
func (rt *Router) InternalRoutes(r *mux.Router) {
	rt.local = r
	r.HandleFunc(readIndexPath, rt.serveReadIndex).Methods(http.MethodGet)
	r.HandleFunc(relayBatchPath, rt.serveRelayBatch).Methods(http.MethodPost)
}

type readIndexAnswer struct {
	Index uint64 `json:"index"`
}

func (rt *Router) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	if !rt.members.Authorized(r) {
		rt.writeRouteError(w, routeError{code: http.StatusUnauthorized, status: wire.StatusUnauthorized, name: "Authorization", desc: "a member token is required"}, true)
		return
	}
	if !rt.st.RaftStatus().Leading() {
		rt.writeRouteError(w, errNotLeader("this member is not the leader"), true)
		return
	}
	idx, err := rt.st.ReadIndex(r.Context())
	switch {
	case errors.Is(err, store.ErrNotLeader):
		rt.writeRouteError(w, errNotLeader(err.Error()), true)
		return
	case err != nil:
		rt.writeRouteError(w, errNoLeader(fmt.Sprintf("leadership could not be confirmed: %v", err)), true)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(wire.HeaderMember, rt.cfg.ID)
	_ = json.NewEncoder(w).Encode(readIndexAnswer{Index: idx})
}

// RemoteReadIndex asks the leader for its read index (the membership
// layer installs it into the store): a follower's linearizable read waits
// for that index.
func (rt *Router) RemoteReadIndex(ctx context.Context) (uint64, error) {
	rs := rt.st.RaftStatus()
	id, raftAddr := rs.LeaderID, rs.LeaderAddr
	if !rs.LeaderKnown() {
		return 0, fmt.Errorf("remote read index: %w", store.ErrNoLeader)
	}
	if id == rt.cfg.ID && rs.Leading() {
		return rt.st.ReadIndex(ctx)
	}
	addr, ok := rt.leaderHTTPAddr(id, raftAddr)
	if !ok {
		return 0, fmt.Errorf("remote read index: http address of leader %q unknown: %w", id, store.ErrNoLeader)
	}
	ctx, cancel := context.WithTimeout(ctx, rt.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rt.members.URL(addr, readIndexPath), nil)
	if err != nil {
		return 0, fmt.Errorf("remote read index: %w", err)
	}
	rt.members.SetAuth(req, false)
	req.Header.Set(ForwardedHeader, rt.cfg.ID)
	resp, err := rt.members.Do(req)
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
