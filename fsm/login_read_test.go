package fsm

import (
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// drawLogin draws a login as cmdGen would, without an idempotency key
// (a keyed login is always applied).
func (g *cmdGen) drawLogin(t *rapid.T) Command {
	for {
		cmd := g.drawFresh(t)
		if cmd.Op == OpLogin {
			return cmd
		}
	}
}

// TestPropertyDecideLoginMatchesApply: for random states and logins, a
// login DecideLogin calls unchanged is answered by Apply exactly as the
// read path answers it, and Apply changes nothing; one it calls changing
// is, when Apply succeeds, a real change (so no login is proposed for
// nothing).
func TestPropertyDecideLoginMatchesApply(t *testing.T) {
	var unchanged, changing int
	rapid.Check(t, func(t *rapid.T) {
		f := New(Options{})
		g := &cmdGen{ts: t0}
		for _, cmd := range setupCommands(t) {
			cmd.TS = g.ts
			f.Apply(cmd)
		}
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			f.Apply(g.draw(t))
			login := g.drawLogin(t)
			res, changes := f.View().DecideLogin(login)
			before := f.Fork()
			applied := f.Apply(login)
			if !changes {
				unchanged++
				if !reflect.DeepEqual(res, applied) {
					t.Fatalf("login %+v: read path answers %+v, Apply answers %+v", login, res, applied)
				}
				if !domainEqual(before, f) {
					t.Fatalf("login %+v: DecideLogin said unchanged, Apply changed the state", login)
				}
				continue
			}
			changing++
			if res != (Result{}) {
				t.Fatalf("login %+v: a changing decision carries an answer %+v", login, res)
			}
			if applied.Err == nil && domainEqual(before, f) {
				t.Fatalf("login %+v: DecideLogin said it changes the state, Apply succeeded without a change (%+v)", login, applied)
			}
		}
	})
	if unchanged == 0 || changing == 0 {
		t.Fatalf("the generator reached %d unchanged and %d changing logins: want both", unchanged, changing)
	}
}

func TestDecideLoginRefusesOtherOps(t *testing.T) {
	f := New(Options{})
	res, changes := f.View().DecideLogin(Command{Op: OpAllocate, Service: "s-1", Email: "a@b"})
	if !changes || res.Err == nil {
		t.Fatalf("DecideLogin(allocate) = %+v, %v; want an error and changes (never served from a read)", res, changes)
	}
}
