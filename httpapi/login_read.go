package httpapi

import (
	"errors"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
)

// errLoginChanges ends the read of a login that must be proposed.
var errLoginChanges = errors.New("login changes the state")

// loginFromRead answers a login that changes nothing from a linearizable
// read instead of a Raft write: most token-server sign-ins are a known
// user with unchanged keys. The decision and the answer come from one
// read view, taken after the leader's read index is applied here, so the
// login takes effect at one point between its request and its answer like
// a write would. served is false when the login must be proposed (it
// changes something, carries an Idempotency-Key whose answer Apply
// remembers, or the read failed: the proposal then reports the error).
func (rq *request) loginFromRead(cmd fsm.Command) (res fsm.Result, served bool) {
	if rq.idemKey != "" {
		return fsm.Result{}, false
	}
	meta, err := rq.s.store.Read(rq.r.Context(), store.ReadOptions{Level: store.ReadLinearizable}, func(rd fsm.Reader) error {
		d, ok := rd.(fsm.LoginDecider)
		if !ok {
			return errLoginChanges
		}
		var changes bool
		if res, changes = d.DecideLogin(cmd); changes {
			return errLoginChanges
		}
		return nil
	})
	if err != nil {
		return fsm.Result{}, false
	}
	rq.meta = &meta
	return res, true
}
