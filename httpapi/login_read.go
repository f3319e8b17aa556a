package httpapi

import (
	"errors"
	"net/http"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
)

// errLoginChanges ends the read of a login that must be proposed.
var errLoginChanges = errors.New("login changes the state")

// loginFromRead answers a login that changes nothing from a linearizable
// read instead of a Raft write, on the member the login arrived at: most
// token-server sign-ins are a known user with unchanged keys. The decision and the answer come from one
// read view, taken after the leader's read index is applied here, so the
// login takes effect at one point between its request and its answer like
// a write would. served is false when the login must be proposed (it
// changes something, carries an Idempotency-Key whose answer Apply
// remembers, or the read failed: the proposal then reports the error).
func (rq *request) loginFromRead(cmd fsm.Command) (res fsm.Result, served bool) {
	if rq.idemKey != "" {
		return fsm.Result{}, false
	}
	rq.loginCmd = cmd
	meta, err := rq.s.store.Read(rq.r.Context(), store.ReadOptions{Level: store.ReadLinearizable}, func(rd fsm.Reader) error {
		d, ok := rd.(fsm.LoginDecider)
		if !ok {
			return errLoginChanges
		}
		var changes bool
		if rq.loginRes, changes = d.DecideLogin(rq.loginCmd); changes {
			return errLoginChanges
		}
		return nil
	})
	if err != nil {
		return fsm.Result{}, false
	}
	rq.setMeta(meta)
	rq.s.metrics.loginRead(cmd.Service, rq.loginRes)
	return rq.loginRes, true
}

// serveLogin is the one path of every login (the login endpoint, the
// token server): it reads at most once. It answers cmd from a read when
// it changes nothing (loginFromRead), else proposes it with propose. A
// login the member it arrived at has read already (readByRelayer) is
// proposed at once. It returns false when the answer is written already
// (an error, or a relayed login).
//
// Linearizable either way: an answer from the read takes effect at the
// read's index, one from a proposal at its commit; both lie between the
// request and its answer. Proposing needs no trust in what the relaying
// member read: the state machine decides the login against the committed
// state, and a login that changes nothing by then answers as a read
// would (Apply runs the decision fsm.View.DecideLogin makes).
func (rq *request) serveLogin(cmd fsm.Command, propose func(fsm.Command) (fsm.Result, bool)) (fsm.Result, bool) {
	if rq.readByRelayer() {
		return rq.countProposed(cmd, propose)
	}
	res, served := rq.loginFromRead(cmd)
	if !served {
		return rq.countProposed(cmd, propose)
	}
	rq.s.metrics.loginDecided(cmd.Service, res, true)
	if res.Err != nil {
		rq.fsmError(res.Err)
		return res, false
	}
	return res, true
}

// countProposed proposes a login and counts it, unless it was relayed: the
// member it was relayed to decides and counts it.
func (rq *request) countProposed(cmd fsm.Command, propose func(fsm.Command) (fsm.Result, bool)) (fsm.Result, bool) {
	res, ok := propose(cmd)
	if !rq.relayed {
		rq.s.metrics.loginDecided(cmd.Service, res, ok || res.Err != nil)
	}
	return res, ok
}

// readByRelayer: r was relayed to this member although its placement lets
// any member serve it. The only relay of such a request is
// proposeOnLeader's, after the member it arrived at read it and found
// that it changes something; reading again here would cost a second
// quorum round for nothing.
func (rq *request) readByRelayer() bool {
	return rq.r.Header.Get(HeaderForwarded) != "" && rq.placement().Where == store.AnyMember
}

// loginPlacement: a login without an Idempotency-Key is served where it
// arrives (its linearizable read works on any member, and most logins
// change nothing); only one that changes something goes to the leader
// (proposeOnLeader). A keyed login is a plain write.
func loginPlacement(r *http.Request) Placement {
	if r.Header.Get(HeaderIdempotencyKey) == "" {
		return Placement{Where: store.AnyMember}
	}
	return Placement{Where: store.OnLeader, Relay: RelayWrite}
}

// proposeOnLeader proposes a login that must be proposed: the Router
// relays it to the leader, as it would have before parsing had the login
// been a plain write, or this member proposes it when it is the leader. It
// returns false when the answer is written already (relayed, or failed).
func (rq *request) proposeOnLeader(cmd fsm.Command) (fsm.Result, bool) {
	if rq.s.routing != nil && rq.s.routing.route(rq.w, rq.r, rq.body, Placement{Where: store.OnLeader, Relay: RelayWrite}, rq.rt.path) {
		rq.relayed = true
		return fsm.Result{}, false
	}
	return rq.apply(cmd)
}
