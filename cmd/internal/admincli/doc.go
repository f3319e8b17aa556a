// Package admincli holds the operator's commands of the wimms binary that
// are whole programs of their own rather than wiring: the admin CLI
// (`wimms service|node|user|users|records|event`, one command per API
// call, docs/cli.md), `wimms status` and `wimms health`, `wimms tls` (CA,
// certificates, gossip key and token files) and `wimms check` (an offline
// check of a stopped member's data dir). cmd/wimms adds the constructors
// (NewServiceCmd, NewStatusCmd, ...) to its root command.
//
// It also owns how any command reaches a member as a client, so the flags
// mean the same everywhere: ClientFlags (--addr, the tokens inline or in
// files, --timeout, WIMMS_<FLAG> variables) with TLSFlags (--tls-ca,
// --tls-cert, --tls-key), which cmd/wimms's bench, purge and data
// lifecycle tools use too; and the exit codes the commands share
// (ExitError: 1 the member refused, 2 bad input and nothing was sent, 3 no
// answer), which main turns into the process's status and last line.
//
// Why apart from cmd/wimms: the binary's main package keeps the server's
// wiring and the root command, so a reader finds what starts a member
// without reading every operator command; the commands here only talk to
// a member over its public API (httpapi/client) or read a stopped
// member's files through store's offline checks, and are tested
// in-process against fake members.
//
// What it must never do: import the server's packages that run a member
// (cluster, httpapi, fsm) or open a running member's data; send a request
// before its input is checked (a usage error means nothing was sent);
// change an exit code or a message without docs/cli.md and the end-to-end
// tests of cmd/wimms, which check them; retry a write on its own (a repeat
// is the operator's choice, made safe by --idempotency-key).
package admincli
