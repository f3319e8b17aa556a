package model

import (
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/jepsen/history"
)

// Operations turns the checked part of the history into porcupine
// operations: answered user ops and unknown-outcome writes. An unknown
// write's return is put after everything else, which lets it take effect at
// any point after its call, or never be observed. Stale reads, failed ops
// and node changes are left out.
func Operations(ops []history.Op) []porcupine.Operation {
	var last time.Duration
	for _, op := range ops {
		last = max(last, op.Return)
	}
	var out []porcupine.Operation
	for _, op := range ops {
		if !op.Kind.InUserModel() {
			continue
		}
		ret := op.Return
		answer := op.Output
		switch {
		case op.Outcome == history.OutcomeOK:
		case op.Outcome == history.OutcomeInfo && op.Kind.IsWrite():
			ret = last + 1
			answer = history.UserOutput{Unknown: true}
		default:
			continue
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client, Input: op.Input, Output: answer,
			Call: int64(op.Call), Return: int64(ret),
			Metadata: fmt.Sprintf("op %d via %s", op.ID, op.Member),
		})
	}
	return out
}

// FirstRejected replays a sequential history (each operation returns before
// the next is called) user by user and describes the first answer the model
// rejects, with the state it was in; "" when every step is accepted. Tests
// use it to say why porcupine rejected a history that should pass.
func FirstRejected(ops []history.Op) string {
	states := map[string]userState{}
	for _, op := range ops {
		next := stepUser(states[op.Email], op.Input, op.Output)
		if len(next) != 1 {
			return fmt.Sprintf("state %s\n op %s", describeState(states[op.Email]),
				describeOperation(op.Input, op.Output))
		}
		states[op.Email] = next[0]
	}
	return ""
}
