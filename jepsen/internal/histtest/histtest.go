// Package histtest writes hand-made histories for the tests of the model,
// the checker and the workload: a builder of operations on a millisecond
// clock and short constructors for inputs and answers.
//
// It exists so that those three packages' tests speak one vocabulary
// instead of three copies of it. It is imported only by tests and must
// never be imported by the harness itself, nor by the model's own
// package-internal tests (it imports the model).
package histtest

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/model"
)

// Emails of the hand-made histories: Email is the default user.
const (
	Email      = "jepsen-00@example.com"
	OtherEmail = "jepsen-01@example.com"
)

// MaxGen is fsm.MaxGeneration: a retired user's generation.
const MaxGen = fsm.MaxGeneration

// Builder writes hand-made histories; times are in milliseconds.
type Builder struct{ Ops []history.Op }

// Add records an operation of Email unless in names another user.
func (h *Builder) Add(outcome history.Outcome, in history.UserInput, out history.UserOutput, call, ret int) *Builder {
	if in.Email == "" {
		in.Email = Email
	}
	h.Ops = append(h.Ops, history.Op{ID: len(h.Ops), Client: len(h.Ops) % 4, Member: "n1", Kind: in.Kind, Email: in.Email,
		Input: in, Output: out, Outcome: outcome,
		Call: time.Duration(call) * time.Millisecond, Return: time.Duration(ret) * time.Millisecond})
	return h
}

// OK records an answered operation.
func (h *Builder) OK(in history.UserInput, out history.UserOutput, call, ret int) *Builder {
	return h.Add(history.OutcomeOK, in, out, call, ret)
}

// Info records an operation whose outcome the client could not know.
func (h *Builder) Info(in history.UserInput, call, ret int) *Builder {
	return h.Add(history.OutcomeInfo, in, history.UserOutput{}, call, ret)
}

// Linearizable is porcupine's verdict on the history under the model.
func (h *Builder) Linearizable(t *testing.T) porcupine.CheckResult {
	t.Helper()
	return porcupine.CheckOperationsTimeout(model.UserModel(), model.Operations(h.Ops), 10*time.Second)
}

// JudgeEach checks every history of cases (each a subtest) and fails the
// ones not judged want.
func JudgeEach(t *testing.T, cases map[string]*Builder, want porcupine.CheckResult) {
	t.Helper()
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			if got := h.Linearizable(t); got != want {
				t.Fatalf("history judged %s, want %s", got, want)
			}
		})
	}
}

// User is an answered user record.
func User(uid, node, gen, kca int64, cs string, old ...string) history.UserView {
	return history.UserView{UID: uid, NodeID: node, Generation: gen, KeysChangedAt: kca, ClientState: cs, OldClientStates: old}
}

// Replaced marks a view as answered with a replaced_at.
func Replaced(u history.UserView) history.UserView { u.Replaced = true; return u }

// RetiredView is a retired user's answered record.
func RetiredView(uid, node, kca int64, cs string, old ...string) history.UserView {
	return Replaced(User(uid, node, fsm.MaxGeneration, kca, cs, old...))
}

// Found is a read or update answered with u.
func Found(u history.UserView) history.UserOutput { return history.UserOutput{User: u} }

// Created is an allocation answered 201 with u.
func Created(u history.UserView) history.UserOutput {
	return history.UserOutput{Created: true, User: u}
}

// Failed is a state machine error answered with status.
func Failed(status string) history.UserOutput { return history.UserOutput{Status: status} }

// LoggedIn is a login answered with u and the fxa_kid the spec derives.
func LoggedIn(u history.UserView) history.UserOutput {
	return history.UserOutput{User: u, FxaKid: model.ExpectedFxaKid(u.Generation, u.KeysChangedAt, u.ClientState)}
}

// Counted is a replace or account event answered with n.
func Counted(n int64) history.UserOutput { return history.UserOutput{Count: n} }

// Deleted is a record deletion answered 204.
func Deleted() history.UserOutput { return history.UserOutput{} }

// Alloc is an allocation with every field sent.
func Alloc(gen, kca int64, cs string) history.UserInput {
	return history.UserInput{Kind: history.OpAllocate, Generation: fsm.SomeInt64(gen), KeysChangedAt: fsm.SomeInt64(kca),
		ClientState: fsm.SomeString(cs)}
}

// Login is a login with every field sent.
func Login(gen, kca int64, cs string) history.UserInput {
	return history.UserInput{Kind: history.OpLogin, Generation: fsm.SomeInt64(gen), KeysChangedAt: fsm.SomeInt64(kca),
		ClientState: fsm.SomeString(cs)}
}

// UpdateGen is an update of the generation alone.
func UpdateGen(gen int64) history.UserInput {
	return history.UserInput{Kind: history.OpUpdate, Generation: fsm.SomeInt64(gen)}
}

// UpdateKeys is an update of generation, keys_changed_at and client state.
func UpdateKeys(gen, kca int64, cs string) history.UserInput {
	return history.UserInput{Kind: history.OpUpdate, Generation: fsm.SomeInt64(gen), KeysChangedAt: fsm.SomeInt64(kca),
		ClientState: fsm.SomeString(cs)}
}

// Get is a linearizable read.
func Get() history.UserInput { return history.UserInput{Kind: history.OpGet} }

// Retire retires the user.
func Retire() history.UserInput { return history.UserInput{Kind: history.OpRetire} }

// Replace replaces the user's current record.
func Replace() history.UserInput { return history.UserInput{Kind: history.OpReplace} }

// Event is an account event, with a generation when gen > 0.
func Event(event string, gen int64) history.UserInput {
	in := history.UserInput{Kind: history.OpEvent, Event: event}
	if gen > 0 {
		in.Generation = fsm.SomeInt64(gen)
	}
	return in
}

// Delete deletes record uid.
func Delete(uid int64) history.UserInput {
	return history.UserInput{Kind: history.OpDeleteRecord, UID: uid}
}

// Unassign unassigns every user of node.
func Unassign(node int64) history.UserInput {
	return history.UserInput{Kind: history.OpUnassign, NodeID: node}
}

// Remove removes node.
func Remove(node int64) history.UserInput {
	return history.UserInput{Kind: history.OpRemoveNode, NodeID: node}
}
