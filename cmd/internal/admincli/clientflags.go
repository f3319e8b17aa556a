package admincli

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// ClientFlags are how a command that talks to a member as an API client
// reaches it: where (--addr), with which tokens (flags or files) and over
// which TLS. Every admin command, status, health and the lifecycle tools
// register them through here, so the flags mean the same everywhere.
type ClientFlags struct {
	Addr                         string
	httpAddr                     string // --http-addr, the old name of --addr (RegisterHTTPAddr)
	apiToken, adminToken         string
	apiTokenFile, adminTokenFile string
	tls                          TLSFlags // tls.go: --tls-ca, --tls-cert, --tls-key
	Timeout                      time.Duration
}

// clientFlagNames are the flags register adds; only these are read from
// WIMMS_<FLAG> variables, so that a member's environment (WIMMS_API_TOKEN,
// WIMMS_TLS_CA, ...) also serves the CLI run next to it.
var clientFlagNames = []string{"addr", "api-token", "admin-token", "api-token-file", "admin-token-file",
	"tls-ca", "tls-cert", "tls-key", "timeout"}

func (f *ClientFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.Addr, "addr", "127.0.0.1:8080", "any member's HTTP address: HOST:PORT, http://HOST:PORT or https://HOST:PORT")
	fl.StringVar(&f.apiToken, "api-token", "", "bearer token for the API, if the cluster requires one")
	fl.StringVar(&f.adminToken, "admin-token", "", "bearer token for admin calls (services, nodes, events), if the cluster has one")
	fl.StringVar(&f.apiTokenFile, "api-token-file", "", "file holding the API token (keeps it out of ps)")
	fl.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin token (keeps it out of ps)")
	AddTLSFlags(fl, &f.tls)
	fl.DurationVar(&f.Timeout, "timeout", cmp.Or(f.Timeout, 10*time.Second), "bound on each call to the member")
}

// httpAddrFlag is what status and health called --addr before they took
// these flags (RegisterHTTPAddr).
const httpAddrFlag = "http-addr"

// RegisterHTTPAddr adds --http-addr as a hidden, deprecated name of --addr.
// A command that has it also falls back to WIMMS_HTTP_ADDR, the address a
// member listens on, when neither flag nor WIMMS_ADDR is set: the image's
// HEALTHCHECK runs `wimms health` in the member's environment and so
// probes that member.
func (f *ClientFlags) RegisterHTTPAddr(fl *pflag.FlagSet) {
	fl.StringVar(&f.httpAddr, httpAddrFlag, "", "the old name of --addr")
	_ = fl.MarkDeprecated(httpAddrFlag, "use --addr")
}

// flagSpellings name the other way of giving a connection flag's value:
// each token inline or as a file, the address as --addr or --http-addr
// (which has no variable of its own: see applyEnv).
var flagSpellings = map[string]string{
	"api-token": "api-token-file", "api-token-file": "api-token",
	"admin-token": "admin-token-file", "admin-token-file": "admin-token",
	"addr": httpAddrFlag,
}

// applyEnv sets each connection flag not given on the command line from
// its WIMMS_<FLAG> variable. A value given on the command line in either
// of its spellings wins over the variables of both.
func (f *ClientFlags) applyEnv(fl *pflag.FlagSet) error {
	sub := pflag.NewFlagSet("client", pflag.ContinueOnError)
	for _, name := range clientFlagNames {
		x := fl.Lookup(name)
		if x == nil {
			continue
		}
		if other := flagSpellings[name]; other != "" && fl.Changed(other) {
			continue
		}
		sub.AddFlag(x)
	}
	if err := ApplyEnv(sub); err != nil {
		return err
	}
	// Neither --addr nor WIMMS_ADDR set: the old name, then the member's
	// own address, where the command takes them.
	if fl.Lookup(httpAddrFlag) != nil && !fl.Changed("addr") {
		if fl.Changed(httpAddrFlag) {
			f.Addr = f.httpAddr
		} else if a, ok := os.LookupEnv("WIMMS_HTTP_ADDR"); ok {
			f.Addr = a
		}
	}
	return nil
}

// applyToolEnv reads the environment of a tool that reaches a member
// (ToolCmd): the connection flags by applyEnv's rules, and the tool's own
// flags from WIMMS_<FLAG> as EnvFirst reads every flag of a tool.
func (f *ClientFlags) applyToolEnv(fl *pflag.FlagSet) error {
	own := pflag.NewFlagSet("tool", pflag.ContinueOnError)
	fl.VisitAll(func(x *pflag.Flag) {
		if !slices.Contains(clientFlagNames, x.Name) && x.Name != httpAddrFlag {
			own.AddFlag(x)
		}
	})
	return errors.Join(ApplyEnv(own), f.applyEnv(fl))
}

// ToolCmd completes cmd, which holds a tool's help text, into a command
// without arguments that reaches a member through f: it takes f's flags
// (f.Timeout, when set, is the default of --timeout) and reads the
// environment (applyToolEnv) before body runs. The tool's own flags are
// added to what it returns.
func (f *ClientFlags) ToolCmd(cmd *cobra.Command, body func(cmd *cobra.Command) error) *cobra.Command {
	f.register(cmd.Flags())
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := f.applyToolEnv(cmd.Flags()); err != nil {
			return err
		}
		return body(cmd)
	}
	return cmd
}

// baseURL is --addr as a URL: a bare HOST:PORT is https:// with --tls-ca,
// else http://.
func (f *ClientFlags) baseURL() (string, error) {
	a := strings.TrimRight(strings.TrimSpace(f.Addr), "/")
	if a == "" {
		return "", usageErrorf("--addr is empty")
	}
	if !strings.Contains(a, "://") {
		scheme := "http://"
		if f.tls.CA != "" {
			scheme = "https://"
		}
		a = scheme + a
	}
	u, err := url.Parse(a)
	if err != nil {
		return "", usageErrorf("--addr %q: %v", f.Addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", usageErrorf("--addr %q: the scheme must be http or https", f.Addr)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", usageErrorf("--addr %q: want HOST:PORT or a URL without a path", f.Addr)
	}
	if u.Scheme == "http" && f.tls.CA != "" {
		return "", usageErrorf("--addr %q is plain http but --tls-ca is set: use https:// or a bare HOST:PORT", f.Addr)
	}
	return u.Scheme + "://" + u.Host, nil
}

// tlsConfig is nil without --tls-ca (plain HTTP, or https:// verified
// against the system roots).
func (f *ClientFlags) tlsConfig() (*tls.Config, error) {
	cfg, err := f.tls.Config()
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return cfg, nil
}

// secretFromFlags is a token given either inline or in a file, not both
// (tokenFromFile, as the server reads its own).
func secretFromFlags(flag, value, file string) (string, error) {
	tok, err := tokenFromFile(flag, value, file)
	if err != nil {
		return "", usageErrorf("%v", err)
	}
	return tok, nil
}

// MemberClients are the clients of one member: api carries the API token,
// admin the admin token. A member accepts the admin token on API routes,
// and the API token on admin routes when it has no admin token, so each
// falls back to the other when only one token is given.
type MemberClients struct {
	API, Admin *client.Client
}

// Connect resolves the flags into clients; every problem is a usage
// error, found before anything is sent.
func (f *ClientFlags) Connect() (MemberClients, error) {
	base, err := f.baseURL()
	if err != nil {
		return MemberClients{}, err
	}
	cfg, err := f.tlsConfig()
	if err != nil {
		return MemberClients{}, err
	}
	apiTok, err := secretFromFlags("api-token", f.apiToken, f.apiTokenFile)
	if err != nil {
		return MemberClients{}, err
	}
	adminTok, err := secretFromFlags("admin-token", f.adminToken, f.adminTokenFile)
	if err != nil {
		return MemberClients{}, err
	}
	if f.Timeout < 0 {
		return MemberClients{}, usageErrorf("--timeout must not be negative")
	}
	rt := client.NewTransport(client.TransportOptions{TLS: cfg})
	build := func(token string) *client.Client {
		opts := []client.Option{client.WithTransport(rt), client.WithTimeout(f.Timeout)}
		if token != "" {
			opts = append(opts, client.WithToken(token))
		}
		return client.New(base, opts...)
	}
	first := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	return MemberClients{API: build(first(apiTok, adminTok)), Admin: build(first(adminTok, apiTok))}, nil
}

// usageErrorf is bad input found before anything was sent (exit 2).
func usageErrorf(format string, args ...any) error {
	return ExitError{Code: ExitUsage, Msg: fmt.Sprintf(format, args...)}
}

// EnvFirst is a command's RunE that sets every flag not given on the
// command line from its WIMMS_<FLAG> variable before running body, so that
// each tool reads its environment the same way.
func EnvFirst(body func(cmd *cobra.Command) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := ApplyEnv(cmd.Flags()); err != nil {
			return err
		}
		return body(cmd)
	}
}
