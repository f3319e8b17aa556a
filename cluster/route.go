package cluster

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// This file is the router: it acts on the placement the HTTP layer's route
// table declared for a request (httpapi.Placement), serving it on this
// member or sending it to the leader before the HTTP layer parses its body
// or anything is proposed to Raft. It also owns what that decision brings
// with it: the forwarding header, the answers a member gives when
// forwarding fails, and how members authenticate to each other.
// forward.go holds the relay itself (transport, retries on dial errors).

// ForwardedHeader marks a request a member relayed to the leader; its value
// is the relaying member's id. A request that carries it is served where it
// arrives, never relayed again: members that disagree about the leader
// cannot bounce it, and a leader that lost leadership since the sender
// looked answers 503 not-leader (its store refuses the proposal).
const ForwardedHeader = httpapi.HeaderForwarded

// joinPath is the endpoint of a join request (POST), see join.go.
const joinPath = "/v1/cluster/members"

// Route decides where r is served (httpapi.Router), acting on the
// placement p the HTTP layer's route table declared for it; nothing here
// works the kind of request out again from its method or path. It returns
// false when this member serves r itself: r may run anywhere, this member
// leads, r was relayed to it already, this member is shutting down (its
// store answers so), or r is a default read and no leader is known (its
// store answers no-leader at once). Otherwise it relays r with body to the
// leader once, as p.Relay says (a write in a batch, anything else alone),
// copies the leader's answer to w and returns true.
//
// The decision is made before the proposal, so a follower never proposes
// a write that is bound to fail. Leadership may still move between this
// decision and the proposal; then the store refuses with ErrNotLeader and
// the client gets 503 not-leader with Retry-After (nothing was appended).
func (c *Cluster) Route(w http.ResponseWriter, r *http.Request, body []byte, p httpapi.Placement) bool {
	if p.Where == store.AnyMember || r.Header.Get(ForwardedHeader) != "" {
		return false
	}
	rs := c.st.RaftStatus()
	switch {
	case rs.Leading(), rs.State == "shutdown":
		return false
	case p.Where == store.OnLeaderIfKnown && !rs.LeaderKnown():
		return false
	}
	if p.Relay == httpapi.RelayWrite {
		c.relayBatched(w, r, body)
	} else {
		c.relay(w, r, body, p.Relay)
	}
	return true
}

// isJoin: a join request, which the leader refuses inside a batch (it
// checks what a follower sent it; the follower relays joins alone because
// their placement says so).
func isJoin(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == joinPath }

// learnJoined remembers the addresses of a member the leader has just added
// through this member (the leader's answer echoes it): this member may have
// to forward to it before gossip has spread its metadata.
func (c *Cluster) learnJoined(answer []byte) {
	var m wire.Member
	if err := json.Unmarshal(answer, &m); err != nil || m.ID == "" || m.ID == c.cfg.ID {
		return
	}
	c.peers.learn(nodeMeta{ID: m.ID, HTTP: m.HTTPAddr, Raft: m.RaftAddr, Gossip: m.GossipAddr, Zone: m.Zone})
}

// routeError is an answer this member gives itself when it cannot get one
// from the leader, in the API's error shape.
type routeError struct {
	code         int
	status, name string
	desc         string
}

// errNoLeader: no leader could be reached and nothing was sent to one
// (or a read failed on the way); retryable.
func errNoLeader(desc string) routeError {
	return routeError{code: http.StatusServiceUnavailable, status: httpapi.StatusNoLeader, name: "leader", desc: desc}
}

// errNotLeader: this member was asked for what only the leader does.
func errNotLeader(desc string) routeError {
	return routeError{code: http.StatusServiceUnavailable, status: httpapi.StatusNotLeader, name: "leader", desc: desc}
}

// errUnknownOutcome: the write may have reached the leader; it is not
// re-sent, only the client may retry (with the same Idempotency-Key).
func errUnknownOutcome(desc string) routeError {
	return routeError{code: http.StatusGatewayTimeout, status: httpapi.StatusUnknownOutcome, name: "leader", desc: desc}
}

// writeRouteError answers for this member itself, with the X-Wimms-*
// headers every answer carries (read: those of a read too) and
// Retry-After on every 503.
func (c *Cluster) writeRouteError(w http.ResponseWriter, e routeError, read bool) {
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	meta := c.st.RaftStatus().Meta()
	h.Set("Content-Type", "application/json")
	h.Set(httpapi.HeaderIndex, strconv.FormatUint(meta.Index, 10))
	h.Set(httpapi.HeaderMember, c.cfg.ID)
	if read {
		h.Set(httpapi.HeaderKnownLeader, strconv.FormatBool(meta.KnownLeader))
		h.Set(httpapi.HeaderLastContact, strconv.FormatInt(meta.LastContactMs, 10))
	}
	if e.code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	b, _ := json.Marshal(wire.ErrorBody{Status: e.status,
		Errors: []wire.ErrorDetail{{Location: httpapi.LocationHeader, Name: e.name, Description: e.desc}}})
	w.WriteHeader(e.code)
	_, _ = w.Write(append(b, '\n'))
}

// Member-to-member authentication: members hold the same tokens as their
// clients. A member sends the API token on reads and the admin token on
// mutations (a join, a removal), each falling back to the other when only
// one is set; it accepts either on its internal endpoints. With no token
// configured the internal endpoints are open like the rest of the API.

// memberAuthorized checks the bearer token of a member-to-member request.
func (c *Cluster) memberAuthorized(r *http.Request) bool {
	if c.cfg.APIToken == "" && c.cfg.AdminToken == "" {
		return true
	}
	return httpapi.HasBearerToken(r, c.cfg.APIToken, c.cfg.AdminToken)
}

// setMemberAuth puts this member's token on a request to another member:
// the admin token for mutations, the member token otherwise.
func (c *Cluster) setMemberAuth(req *http.Request, mutation bool) {
	tok := c.memberToken()
	if mutation {
		tok = c.adminToken()
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

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
