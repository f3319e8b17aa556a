package history

import (
	"fmt"
	"strings"

	"github.com/wimms-dev/wimms/fsm"
)

func describeOptInt(name string, o fsm.OptInt64) string {
	if !o.Set {
		return ""
	}
	return fmt.Sprintf(" %s=%d", name, o.V)
}

// DescribeInput is the one-line form of an input used in history.html,
// anomaly details and test failures.
func DescribeInput(in UserInput) string {
	s := string(in.Kind) + describeOptInt("gen", in.Generation) + describeOptInt("kca", in.KeysChangedAt)
	if in.ClientState.Set {
		s += " cs=" + in.ClientState.V
	}
	if in.Event != "" {
		s += " event=" + in.Event
	}
	if in.UID != 0 {
		s += fmt.Sprintf(" uid=%d", in.UID)
	}
	if in.NodeID != 0 {
		s += fmt.Sprintf(" node=%d", in.NodeID)
	}
	return s
}

// DescribeView is the one-line form of an answered user record.
func DescribeView(u UserView) string {
	kca := "null"
	if u.KeysChangedAt != fsm.Null {
		kca = fmt.Sprint(u.KeysChangedAt)
	}
	replaced := ""
	if u.Replaced {
		replaced = " replaced"
	}
	return fmt.Sprintf("uid=%d node=%d gen=%s kca=%s cs=%s old=[%s]%s", u.UID, u.NodeID, DescribeGen(u.Generation), kca,
		u.ClientState, strings.Join(u.OldClientStates, ","), replaced)
}

// DescribeGen shows MAX_GENERATION (retired) as MAX.
func DescribeGen(g int64) string {
	if g == fsm.MaxGeneration {
		return "MAX"
	}
	return fmt.Sprint(g)
}

// DescribeOutput is the one-line form of an answer.
func DescribeOutput(out UserOutput) string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.Status != "":
		return out.Status
	case out.Created:
		return "created " + DescribeView(out.User)
	case out.User.UID == 0:
		return fmt.Sprintf("n=%d", out.Count)
	}
	return DescribeView(out.User)
}
