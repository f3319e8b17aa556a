package admincli

// The admin CLI: `wimms service|node|user|users|records|event`, one
// command per API call (docs/cli.md). Each command checks its input,
// makes its calls through httpapi/client and prints the answer as a
// table, or with --json as the API's JSON.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// Exit codes of the admin commands.
const (
	ExitAPIError    = 1 // the member answered with an error (printed), or the node was not found
	ExitUsage       = 2 // bad flags or arguments: nothing was sent
	ExitUnreachable = 3 // no complete answer from the member
)

const defaultService = "sync-1.5"

// adminCmd holds what every admin command shares: the connection flags,
// the output format, the service it addresses and, for reads, the read
// level.
type adminCmd struct {
	conn         ClientFlags
	asJSON       bool
	service      string
	consistency  string
	maxStaleness time.Duration
	idemKey      string
	flags        *pflag.FlagSet // all of the command's flags, to tell which were given
}

// adminOpts choose which shared flags a command takes.
type adminOpts struct {
	service bool // --service
	read    bool // --consistency, --max-staleness
	write   bool // --idempotency-key
}

func (a *adminCmd) register(cmd *cobra.Command, o adminOpts) {
	fl := cmd.Flags()
	a.flags = fl
	a.conn.register(fl)
	fl.BoolVar(&a.asJSON, "json", false, "print the API's JSON answer instead of a table")
	if o.service {
		fl.StringVarP(&a.service, "service", "s", defaultService, "service, as {app}-{version}")
	}
	if o.read {
		fl.StringVar(&a.consistency, "consistency", "", "read level: stale, default or linearizable (empty: the member's default)")
		fl.DurationVar(&a.maxStaleness, "max-staleness", 0, "with --consistency stale: refuse an answer staler than this")
	}
	if o.write {
		fl.StringVar(&a.idemKey, "idempotency-key", "", "makes the write safe to repeat: a repeat with the same key gets the first answer instead of acting twice")
	}
}

// adminBody is what an admin command does once its shared flags (a) are
// checked and the member's clients are made.
type adminBody func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error

// adminCommand completes cmd, which holds a command's help text and Args,
// into an admin command: it takes the shared flags opts names, and body
// runs through run. The command's own flags are added to what it returns.
func adminCommand(cmd *cobra.Command, opts adminOpts, body adminBody) *cobra.Command {
	a := new(adminCmd)
	a.register(cmd, opts)
	cmd.RunE = a.run(body)
	return cmd
}

// run wraps a command's body: it reads the environment, checks the shared
// flags, connects, and turns the body's errors into one line and an exit
// code.
func (a *adminCmd) run(body adminBody) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := a.conn.applyEnv(cmd.Flags()); err != nil {
			return usageErrorf("%v", err)
		}
		if cmd.Flags().Lookup("service") != nil {
			if err := checkServiceArg(a.service); err != nil {
				return err
			}
		}
		if err := a.checkReadLevel(); err != nil {
			return err
		}
		if err := checkIdempotencyKey(a.idemKey); err != nil {
			return err
		}
		c, err := a.conn.Connect()
		if err != nil {
			return err
		}
		return body(a, cmd.Context(), c, cmd.OutOrStdout(), args)
	}
}

// given tells whether the flag name was set on the command line.
func (a *adminCmd) given(name string) bool { return a.flags.Changed(name) }

// givenCount is the value v of the flag name when it was given, refused
// when negative; nil when the flag was not given.
func (a *adminCmd) givenCount(name string, v int64) (*int64, error) {
	if !a.given(name) {
		return nil, nil
	}
	if err := checkNonNegative(name, v); err != nil {
		return nil, err
	}
	return wire.Int64(v), nil
}

// givenTime is the time the flag name gives as s (parseMillis) when it was
// given; nil when it was not.
func (a *adminCmd) givenTime(name, s string) (*int64, error) {
	if !a.given(name) {
		return nil, nil
	}
	ms, err := parseMillis(name, s)
	if err != nil {
		return nil, err
	}
	return &ms, nil
}

func (a *adminCmd) checkReadLevel() error {
	switch a.consistency {
	case "", "stale", "default", "linearizable":
	default:
		return usageErrorf("--consistency %q: want stale, default or linearizable", a.consistency)
	}
	if a.maxStaleness < 0 {
		return usageErrorf("--max-staleness must not be negative")
	}
	if a.maxStaleness > 0 && a.consistency != "stale" {
		return usageErrorf("--max-staleness applies only to --consistency stale")
	}
	return nil
}

// readOpts are the call options of a read.
func (a *adminCmd) readOpts() client.CallOptions {
	return client.CallOptions{Consistency: a.consistency, MaxStaleness: a.maxStaleness}
}

// writeOpts are the call options of a write.
func (a *adminCmd) writeOpts() client.CallOptions {
	return client.CallOptions{IdempotencyKey: a.idemKey}
}

// checkIdempotencyKey: an unset key ("") is allowed; a set one follows the
// API's rule.
func checkIdempotencyKey(k string) error {
	if k == "" {
		return nil
	}
	if p := wire.CheckIdempotencyKey(k); p != "" {
		return usageErrorf("--idempotency-key: %s", p)
	}
	return nil
}

// emit prints v as indented JSON with --json, else calls table.
func (a *adminCmd) emit(out io.Writer, v any, table func(w io.Writer)) error {
	if a.asJSON {
		return writeJSON(out, v)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// writeJSON prints v as indented JSON, the API's own form.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// answer prints what a call answered, v, as emit does; when the call
// failed (err), it returns the line callFailed makes of it instead, naming
// the call as what.
func (a *adminCmd) answer(out io.Writer, what string, err error, v any, table func(w io.Writer)) error {
	if err != nil {
		return callFailed(what, err)
	}
	return a.emit(out, v, table)
}

// callFailed turns a client error into the one line the user sees and the
// exit code: the API's error body (status and each problem), or why no
// answer came, saying whether a write may have been applied.
func callFailed(what string, err error) ExitError {
	var ae *client.APIError
	var te *client.TransportError
	if h := hintFor(err); h != "" && !client.IsStatus(err, "unauthorized") {
		// The member was reached the wrong way: what to change is the
		// whole message; the raw error would only add noise.
		code := ExitUnreachable
		if ae != nil || errors.As(err, &ae) {
			code = ExitAPIError
		}
		return ExitError{Code: code, Msg: fmt.Sprintf("%s: %s", what, h)}
	}
	switch {
	case errors.As(err, &ae):
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %d", what, ae.HTTPStatus)
		if ae.Status != "" {
			fmt.Fprintf(&b, " %s", ae.Status)
		}
		for i, d := range ae.Errors {
			sep := ";"
			if i == 0 {
				sep = ":"
			}
			name := strings.TrimSpace(d.Location + " " + d.Name)
			if name != "" {
				fmt.Fprintf(&b, "%s %s: %s", sep, name, d.Description)
			} else {
				fmt.Fprintf(&b, "%s %s", sep, d.Description)
			}
		}
		if h := hintFor(err); h != "" {
			fmt.Fprintf(&b, " — %s", h)
		}
		if ae.Status == "unknown-outcome" {
			b.WriteString(" (the change may or may not have been applied: check, or repeat it with the same --idempotency-key)")
		}
		return ExitError{Code: ExitAPIError, Msg: b.String()}
	case errors.As(err, &te):
		msg := fmt.Sprintf("%s: no answer from the member: %v", what, te.Err)
		if te.Sent && te.Method != "GET" {
			msg += " (the request was sent: the change may or may not have been applied; check, or repeat it with the same --idempotency-key)"
		}
		return ExitError{Code: ExitUnreachable, Msg: msg}
	default:
		return ExitError{Code: ExitAPIError, Msg: fmt.Sprintf("%s: %v", what, err)}
	}
}

// ---- input checks: the same rules as the API, so bad input is refused
// here and nothing is sent ----

// argRule turns one of the API's field rules (wire) into a check of a
// command-line value that names it as what.
func argRule(what string, rule func(string) string) func(string) error {
	return func(s string) error {
		if p := rule(s); p != "" {
			return usageErrorf("%s %q: %s", what, s, p)
		}
		return nil
	}
}

var (
	checkServiceArg     = argRule("service", wire.CheckServiceName)
	checkEmailArg       = argRule("email", wire.CheckEmail)
	checkNodeURLArg     = argRule("node URL", wire.CheckNodeURL)
	checkClientStateArg = argRule("--client-state", wire.CheckClientState)
)

func checkNonNegative(flag string, v int64) error {
	if v < 0 {
		return usageErrorf("--%s %d: must not be negative", flag, v)
	}
	return nil
}

// checkReleaseRate: a plain decimal greater than 0 and at most 1.
func checkReleaseRate(s string) error {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9') && s[i] != '.' {
			return usageErrorf("--release-rate %q: must be a decimal such as 0.1", s)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if s == "" || !ok {
		return usageErrorf("--release-rate %q: must be a decimal such as 0.1", s)
	}
	if r.Sign() <= 0 || r.Cmp(big.NewRat(1, 1)) > 0 {
		return usageErrorf("--release-rate %s: must be greater than 0 and at most 1", s)
	}
	return nil
}

// parseMillis reads a point in time as Unix milliseconds or RFC 3339.
func parseMillis(flag, s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 {
			return 0, usageErrorf("--%s %s: must not be negative", flag, s)
		}
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, usageErrorf("--%s %q: want Unix milliseconds or an RFC 3339 time such as 2025-01-31T12:00:00Z", flag, s)
	}
	if t.UnixMilli() < 0 {
		return 0, usageErrorf("--%s %s: must not be before 1970", flag, s)
	}
	return t.UnixMilli(), nil
}

// ---- table cells ----

func fmtMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

func fmtOptMillis(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return fmtMillis(*ms)
}

func fmtOptInt(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func fmtOptString(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func fmtText(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtGeneration marks the retired generation (the largest int64).
func fmtGeneration(g int64) string {
	if g == math.MaxInt64 {
		return strconv.FormatInt(g, 10) + " (retired)"
	}
	return strconv.FormatInt(g, 10)
}

// fmtNodeOf is a record's node, "(removed)" when it was removed.
func fmtNodeOf(url *string, id int64) string {
	if url == nil {
		return fmt.Sprintf("(removed, id %d)", id)
	}
	return *url
}

// argsExactly and argsAtLeast refuse a wrong argument count as a usage
// error that names what is expected.
// argsOne: exactly one argument, which check accepts; bad input is refused
// before the command runs.
func argsOne(check func(string) error) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := argsExactly(1)(cmd, args); err != nil {
			return err
		}
		return check(args[0])
	}
}

func argsExactly(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s: want %d argument(s), got %d: %s (see --help)", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

func argsAtLeast(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageErrorf("%s: want at least %d argument(s), got %d: %s (see --help)", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// plural is "1 record", "2 records".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// exampleOf indents an Example block the way cobra prints it.
func exampleOf(lines ...string) string {
	return "  " + strings.Join(lines, "\n  ")
}

// groupCmd is a command that only holds subcommands.
func groupCmd(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs}
	cmd.AddCommand(subs...)
	return cmd
}

// orEmpty is s, or an empty slice when s is nil, so JSON shows [] and not
// null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
