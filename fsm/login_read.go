package fsm

// DecideLogin says what OpLogin cmd would do to the state of v without
// doing it. When changes is false, Apply of cmd (without an idempotency
// key) would change no user, node or service and answer exactly res — a
// success or an error — so res may be served from a linearizable read of
// v instead of a Raft write. When changes is true, res is empty: only
// Apply can answer (it creates a user, changes keys or places a record).
//
// The login rules are written once (state.decideLogin); Apply runs the
// same decision and then changes the state, so the two cannot drift.
// cmd.IdempotencyKey is the caller's business: a keyed login is always
// applied, because Apply remembers its answer.
func (v *View) DecideLogin(cmd Command) (res Result, changes bool) {
	if cmd.Op != OpLogin {
		return Result{Err: badRequest("op", "DecideLogin: op %d is not a login", cmd.Op)}, true
	}
	d := v.st.decideLogin(&cmd, &user{})
	switch {
	case d.err != nil:
		return fail(d.err), false
	case d.unchanged:
		return v.st.loginResult(d.sv, d.u), false
	}
	return Result{}, true
}

// LoginDecider is implemented by a read view that can decide a login
// (View); the HTTP layer checks for it on the Reader a read hands it.
type LoginDecider interface {
	DecideLogin(cmd Command) (res Result, changes bool)
}

var _ LoginDecider = (*View)(nil)
