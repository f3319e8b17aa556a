package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/cmd/internal/admincli"
	"github.com/wimms-dev/wimms/httpapi/client"
)

// clientFlags are admincli's connection flags (--addr, the tokens, TLS,
// --timeout) as the data lifecycle tools wired here (lifecycle.go) take
// them: timeout, when set, is the default of --timeout.
type clientFlags struct {
	timeout time.Duration
	conn    *admincli.ClientFlags
}

// toolCmd completes cmd into a tool that reaches a member
// (admincli.ClientFlags.ToolCmd).
func (f *clientFlags) toolCmd(cmd *cobra.Command, body func(cmd *cobra.Command) error) *cobra.Command {
	f.conn = &admincli.ClientFlags{Timeout: f.timeout}
	return f.conn.ToolCmd(cmd, body)
}

// memberClients is what the lifecycle tools use of admincli.MemberClients:
// the client that carries the admin token.
type memberClients struct {
	admin *client.Client
}

func (f *clientFlags) connect() (memberClients, error) {
	c, err := f.conn.Connect()
	return memberClients{admin: c.Admin}, err
}
