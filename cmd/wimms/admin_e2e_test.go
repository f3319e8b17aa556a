package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// cliResult is one run of the wimms binary as a user types it.
type cliResult struct {
	args         []string
	stdout       string
	stderr       string
	code         int
	stdoutFields [][]string // stdout split into lines of whitespace-separated fields
}

// adminCLI runs admin commands against one member, with the admin token
// from a file and the API token from the environment.
type adminCLI struct {
	t    *testing.T
	env  []string // added to the commands' environment
	base []string // connection flags
}

func (c adminCLI) run(args ...string) cliResult {
	c.t.Helper()
	cmd := testutil.Wimms(c.t, append(append([]string{}, args...), c.base...)...)
	cmd.Env = append(cmd.Env, c.env...)
	r := cliResult{args: args}
	r.stdout, r.stderr, r.code = testutil.RunSplit(c.t, cmd)
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		r.stdoutFields = append(r.stdoutFields, strings.Fields(sc.Text()))
	}
	return r
}

// ok runs a command that must succeed and print nothing on stderr.
func (c adminCLI) ok(args ...string) cliResult {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("wimms %s: exit %d, stderr %q, stdout %q", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r
}

// okJSON runs a command with --json and decodes its output into v.
func (c adminCLI) okJSON(v any, args ...string) {
	c.t.Helper()
	r := c.ok(append(args, "--json")...)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		c.t.Fatalf("wimms %s --json: %v in %q", strings.Join(args, " "), err, r.stdout)
	}
}

// fails runs a command that must fail with code and one line on stderr
// containing want, and nothing on stdout.
func (c adminCLI) fails(code int, want string, args ...string) {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code {
		c.t.Fatalf("wimms %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, code, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "wimms: ") || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("wimms %s: stderr %q, want one line containing %q", strings.Join(args, " "), r.stderr, want)
	}
	if r.stdout != "" {
		c.t.Fatalf("wimms %s: printed %q on a failure", strings.Join(args, " "), r.stdout)
	}
}

// row returns the table row whose first field is key.
func (r cliResult) row(t *testing.T, key string) []string {
	t.Helper()
	for _, f := range r.stdoutFields {
		if len(f) > 0 && f[0] == key {
			return f
		}
	}
	t.Fatalf("wimms %s: no row %q in\n%s", strings.Join(r.args, " "), key, r.stdout)
	return nil
}

// requestCounts sums wimms_http_requests_total of the API routes (not
// /metrics itself) by method and by "method code", as the member counted
// them.
func requestCounts(t *testing.T, m *member) map[string]float64 {
	t.Helper()
	resp, err := http.Get(m.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	counts := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "wimms_http_requests_total{") || strings.Contains(line, `route="/metrics"`) {
			continue
		}
		labels, value, _ := strings.Cut(line[len("wimms_http_requests_total{"):], "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		var method, code string
		for _, l := range strings.Split(labels, ",") {
			if v, ok := strings.CutPrefix(l, `method="`); ok {
				method = strings.TrimSuffix(v, `"`)
			}
			if v, ok := strings.CutPrefix(l, `code="`); ok {
				code = strings.TrimSuffix(v, `"`)
			}
		}
		counts[method] += v
		counts[method+" "+code] += v
		counts["all"] += v
	}
	if counts["all"] == 0 {
		t.Fatal("the member counted no requests: the metric was not found")
	}
	return counts
}

// TestAdminCLISession drives a real member through the admin CLI the way
// an operator would: a service, nodes added by URL, downed and upped by URL
// and by id, users allocated, read, replaced and retired, old records
// listed and deleted, users counted, an account event sent. Table and
// --json outputs are both checked, the JSON against the API's own answers.
// Bad input is refused with one clear line, a distinct exit code, and
// nothing sent or changed.
func TestAdminCLISession(t *testing.T) {
	const apiToken, adminToken = "cli-api-secret", "cli-admin-secret"
	m := newMember(t, "cli", "z1")
	m.Flags = append(m.Flags, "--api-token", apiToken, "--admin-token", adminToken)
	m.start()
	m.waitReady(20 * time.Second)
	api := m.api(client.WithToken(adminToken))
	ctx := context.Background()

	adminFile := testutil.TempFile(t, "admin-token", []byte(adminToken+"\n"))
	cli := adminCLI{t: t, env: []string{"WIMMS_API_TOKEN=" + apiToken},
		base: []string{"--addr", "http://" + m.HTTPAddr, "--admin-token-file", adminFile}}
	const svc, n1URL, n2URL = "sync-1.5", "https://n1.example.com", "https://n2.example.com"

	// A service, created then read back.
	put := cli.ok("service", "put", svc, "--pattern", "{node}/1.5/{uid}", "--release-rate", "0.5")
	if r := put.row(t, "1"); r[1] != svc || r[2] != "{node}/1.5/{uid}" || r[3] != "0.5" || r[4] != "true" || r[5] != "1" {
		t.Fatalf("service put table row %v", r)
	}
	var gotSvc wire.Service
	cli.okJSON(&gotSvc, "service", "get", svc, "--consistency", "linearizable")
	if gotSvc.Service != svc || gotSvc.Pattern != "{node}/1.5/{uid}" || gotSvc.ReleaseRate != "0.5" || !gotSvc.AllowNewUsers || gotSvc.Spread != 1 {
		t.Fatalf("service get --json: %+v", gotSvc)
	}
	var svcList struct{ Services []wire.Service }
	cli.okJSON(&svcList, "service", "list")
	if len(svcList.Services) != 1 || svcList.Services[0] != gotSvc {
		t.Fatalf("service list --json: %+v", svcList)
	}

	// Nodes, added by URL.
	cli.ok("node", "add", n1URL, "--capacity", "10")
	var n2 wire.Node
	cli.okJSON(&n2, "node", "add", n2URL, "--capacity", "10")
	if n2.Node != n2URL || n2.Capacity != 10 || n2.Available != 5 || n2.Downed {
		t.Fatalf("node add --json: %+v (available = ceil(10 × 0.5) = 5)", n2)
	}
	var nodes struct{ Nodes []wire.Node }
	cli.okJSON(&nodes, "node", "list")
	if len(nodes.Nodes) != 2 || nodes.Nodes[0].Node != n1URL || nodes.Nodes[1] != n2 {
		t.Fatalf("node list --json: %+v", nodes.Nodes)
	}
	n1 := nodes.Nodes[0]
	n1ID, n2ID := strconv.FormatInt(n1.ID, 10), strconv.FormatInt(n2.ID, 10)

	// Down and up, by URL and by id; each checked through the API itself.
	downedOf := func(id int64) bool {
		t.Helper()
		n, _, err := api.GetNode(ctx, svc, id, client.CallOptions{Consistency: "linearizable"})
		if err != nil {
			t.Fatal(err)
		}
		return n.Downed
	}
	var changed wire.Node
	cli.okJSON(&changed, "node", "down", n1URL)
	if changed.ID != n1.ID || !changed.Downed || !downedOf(n1.ID) {
		t.Fatalf("node down URL: %+v", changed)
	}
	table := cli.ok("node", "list", "--consistency", "linearizable")
	if r := table.row(t, n1ID); r[1] != n1URL || r[5] != "true" || r[6] != "false" {
		t.Fatalf("node list table after down: %v", r)
	}
	if r := table.row(t, n2ID); r[1] != n2URL || r[2] != "10" || r[3] != "5" || r[4] != "0" || r[5] != "false" {
		t.Fatalf("node list table, untouched node: %v", r)
	}
	cli.okJSON(&changed, "node", "up", n1ID)
	if changed.ID != n1.ID || changed.Downed || downedOf(n1.ID) {
		t.Fatalf("node up id: %+v", changed)
	}
	cli.ok("node", "down", n2ID)
	if !downedOf(n2.ID) {
		t.Fatal("node down by id did not down the node")
	}
	if r := cli.ok("node", "up", n2URL).row(t, n2ID); r[5] != "false" || downedOf(n2.ID) {
		t.Fatalf("node up URL: %v", r)
	}
	var got wire.Node
	cli.okJSON(&got, "node", "get", n2URL, "--consistency", "stale")
	if got.ID != n2.ID || got.Node != n2URL {
		t.Fatalf("node get URL: %+v", got)
	}
	cli.okJSON(&changed, "node", "set", n1URL, "--capacity", "20", "--backoff")
	if changed.Capacity != 20 || !changed.Backoff || changed.Downed {
		t.Fatalf("node set: %+v", changed)
	}
	cli.ok("node", "set", n1ID, "--backoff=false")

	// Users: allocated (one on a chosen node), read back.
	alloc := cli.ok("user", "allocate", "u1@example.com", "--node", n2URL, "--generation", "7", "--client-state", "aabb")
	if alloc.row(t, "new")[2] != "true" || alloc.row(t, "email")[1] != "u1@example.com" || alloc.row(t, "generation")[1] != "7" {
		t.Fatalf("user allocate table:\n%s", alloc.stdout)
	}
	var u1 wire.User
	cli.okJSON(&u1, "user", "get", "u1@example.com", "--consistency", "linearizable")
	if u1.Email != "u1@example.com" || u1.NodeID != n2.ID || u1.Generation != 7 || u1.ClientState != "aabb" ||
		u1.APIEndpoint == nil || *u1.APIEndpoint != fmt.Sprintf("%s/1.5/%d", n2URL, u1.UID) || u1.ReplacedAt != nil {
		t.Fatalf("user get --json: %+v", u1)
	}
	if again := cli.ok("user", "allocate", "u1@example.com"); again.row(t, "new")[2] != "false" || again.row(t, "uid")[1] != strconv.FormatInt(u1.UID, 10) {
		t.Fatalf("a second allocate made a new record:\n%s", again.stdout)
	}
	var u2, u3 wire.User
	cli.okJSON(&u2, "user", "allocate", "u2@example.com")
	cli.okJSON(&u3, "user", "allocate", "u3@example.com")
	if u2.NodeID != n1.ID && u2.NodeID != n2.ID || u3.UID == u2.UID {
		t.Fatalf("allocations: %+v %+v", u2, u3)
	}

	// Replace and retire.
	var replaced struct{ Replaced int64 }
	cli.okJSON(&replaced, "user", "replace", "u1@example.com", "--idempotency-key", "replace-u1")
	if replaced.Replaced != 1 {
		t.Fatalf("user replace: %+v, want 1", replaced)
	}
	// Repeated with its key, the write answers as the first time; a new
	// replace finds nothing left to replace.
	cli.okJSON(&replaced, "user", "replace", "u1@example.com", "--idempotency-key", "replace-u1")
	if replaced.Replaced != 1 {
		t.Fatalf("user replace repeated with its key: %+v, want the first answer (1)", replaced)
	}
	cli.okJSON(&replaced, "user", "replace", "u1@example.com")
	if replaced.Replaced != 0 {
		t.Fatalf("user replace of a replaced user: %+v, want 0", replaced)
	}
	var recs struct{ Records []wire.Record }
	cli.okJSON(&recs, "user", "records", "u1@example.com")
	if len(recs.Records) != 1 || recs.Records[0].UID != u1.UID || recs.Records[0].ReplacedAt == nil {
		t.Fatalf("user records after replace: %+v", recs.Records)
	}
	var u1b wire.User
	cli.okJSON(&u1b, "user", "allocate", "u1@example.com", "--node", n2URL)
	if u1b.UID == u1.UID || u1b.NodeID != n2.ID {
		t.Fatalf("allocate after replace: %+v", u1b)
	}
	var retired wire.User
	cli.okJSON(&retired, "user", "retire", "u2@example.com")
	if retired.Generation != math.MaxInt64 || retired.ReplacedAt == nil {
		t.Fatalf("user retire: %+v", retired)
	}
	if r := cli.ok("user", "get", "u2@example.com"); !strings.Contains(r.stdout, "(retired)") {
		t.Fatalf("a retired user's table does not say so:\n%s", r.stdout)
	}
	rtable := cli.ok("user", "records", "u1@example.com")
	if len(rtable.stdoutFields) != 3 || rtable.row(t, strconv.FormatInt(u1.UID, 10))[1] != n2URL {
		t.Fatalf("user records table:\n%s", rtable.stdout)
	}

	// Old records: both replaced records, once their replaced_at is in the
	// member's past; the old one of u1 is deleted.
	var old struct{ Records []wire.Record }
	eventually(t, 10*time.Second, "replaced records listed as old", func() error {
		cli.okJSON(&old, "records", "old", "--grace", "0")
		if len(old.Records) != 2 {
			return fmt.Errorf("%d old records: %+v", len(old.Records), old.Records)
		}
		return nil
	})
	oldUIDs := map[int64]string{}
	for _, r := range old.Records {
		oldUIDs[r.UID] = r.Email
	}
	if oldUIDs[u1.UID] != "u1@example.com" || oldUIDs[u2.UID] != "u2@example.com" {
		t.Fatalf("records old --json: %+v", old.Records)
	}
	if r := cli.ok("records", "old", "--grace", "0", "--limit", "1"); len(r.stdoutFields) != 2 {
		t.Fatalf("records old --limit 1 table:\n%s", r.stdout)
	}
	if r := cli.ok("records", "old", "--grace", "24h"); len(r.stdoutFields) != 1 {
		t.Fatalf("records old --grace 24h lists records replaced just now:\n%s", r.stdout)
	}
	var deleted struct{ Deleted []int64 }
	cli.okJSON(&deleted, "records", "delete", strconv.FormatInt(u1.UID, 10))
	if len(deleted.Deleted) != 1 || deleted.Deleted[0] != u1.UID {
		t.Fatalf("records delete --json: %+v", deleted)
	}
	cli.okJSON(&recs, "user", "records", "u1@example.com")
	if len(recs.Records) != 1 || recs.Records[0].UID != u1b.UID {
		t.Fatalf("records of u1 after the delete: %+v", recs.Records)
	}

	// Counting, and an account event.
	var count wire.Count
	cli.okJSON(&count, "users", "count")
	if count.Count != 2 || count.AsOf <= 0 {
		t.Fatalf("users count: %+v, want 2 (u1, u3; u2 retired)", count)
	}
	if r := cli.ok("users", "count", "--all"); !strings.HasPrefix(r.stdout, "2 users in all services as of ") {
		t.Fatalf("users count --all table: %q", r.stdout)
	}
	cli.okJSON(&count, "users", "count", "--as-of", "1")
	if count.Count != 0 || count.AsOf != 1 {
		t.Fatalf("users count --as-of 1: %+v", count)
	}
	var applied struct{ Applied int64 }
	cli.okJSON(&applied, "event", "delete", "u3@example.com")
	if applied.Applied != 1 {
		t.Fatalf("event delete: %+v", applied)
	}
	cli.okJSON(&count, "users", "count")
	if count.Count != 1 {
		t.Fatalf("users count after the delete event: %+v", count)
	}

	// Bad input: one clear line, exit 2, and nothing sent.
	before := requestCounts(t, m)
	cli.fails(exitUsage, `node "not-a-url": want a node id or the node's http(s) URL`, "node", "down", "not-a-url")
	cli.fails(exitUsage, "must be an http or https URL", "node", "add", "ftp://n3.example.com", "--capacity", "1")
	cli.fails(exitUsage, "--capacity is required", "node", "add", "https://n3.example.com")
	cli.fails(exitUsage, "--capacity -1: must not be negative", "node", "add", "https://n3.example.com", "--capacity", "-1")
	cli.fails(exitUsage, "nothing to change", "node", "set", n1ID)
	cli.fails(exitUsage, "node id 0: must be positive", "node", "remove", "0")
	cli.fails(exitUsage, "must not contain '/'", "user", "get", "a/b@example.com")
	cli.fails(exitUsage, "--client-state", "user", "allocate", "u9@example.com", "--client-state", "not hex!")
	cli.fails(exitUsage, "--release-rate 2: must be greater than 0 and at most 1", "service", "put", svc, "--pattern", "p", "--release-rate", "2")
	cli.fails(exitUsage, "--pattern is required", "service", "put", svc)
	cli.fails(exitUsage, "service \"sync\"", "node", "list", "--service", "sync")
	cli.fails(exitUsage, `event "explode": want delete, reset or passwordChange`, "event", "explode", "u1@example.com")
	cli.fails(exitUsage, `--consistency "bogus"`, "user", "get", "u1@example.com", "--consistency", "bogus")
	cli.fails(exitUsage, "--max-staleness applies only to --consistency stale", "node", "list", "--max-staleness", "1s")
	cli.fails(exitUsage, `uid "abc": must be a positive integer`, "records", "delete", "1", "abc")
	cli.fails(exitUsage, "--limit 0", "records", "old", "--limit", "0")
	cli.fails(exitUsage, "--at", "user", "replace", "u1@example.com", "--at", "yesterday")
	cli.fails(exitUsage, "--idempotency-key: must be 1 to 128 characters", "node", "down", n1ID, "--idempotency-key", strings.Repeat("k", 129))
	cli.fails(exitUsage, "--all and --service exclude each other", "users", "count", "--all", "--service", svc)
	cli.fails(exitUsage, "wimms node get: want 1 argument(s), got 0", "node", "get")
	cli.fails(exitUsage, "--api-token and --api-token-file are both set", "node", "list", "--api-token", "x", "--api-token-file", adminFile)
	cli.fails(exitUsage, "--tls-cert/--tls-key need --tls-ca", "node", "list", "--tls-cert", "c.pem", "--tls-key", "k.pem")
	bare := adminCLI{t: t, env: cli.env}
	bare.fails(exitUsage, "the scheme must be http or https", "node", "list", "--addr", "ftp://"+m.HTTPAddr)
	bare.fails(exitUsage, "--addr \"https://"+m.HTTPAddr+"/v1\": want HOST:PORT or a URL without a path", "node", "list", "--addr", "https://"+m.HTTPAddr+"/v1")
	if after := requestCounts(t, m); after["all"] != before["all"] {
		t.Fatalf("bad input reached the member: requests %v → %v", before, after)
	}

	// The member refuses, or cannot be reached: one line, exit 1 or 3,
	// nothing changed.
	stateBefore := cli.ok("node", "list", "--json").stdout
	before = requestCounts(t, m)
	cli.fails(exitAPIError, "no node https://n9.example.com in service sync-1.5", "node", "down", "https://n9.example.com")
	cli.fails(exitAPIError, "no node https://n9.example.com in service sync-1.5", "node", "remove", "https://n9.example.com")
	cli.fails(exitAPIError, "404 not-found", "node", "up", "999")
	cli.fails(exitAPIError, "409", "node", "add", n2URL, "--capacity", "1")
	apiOnly := adminCLI{t: t, env: cli.env, base: []string{"--addr", m.HTTPAddr}}
	apiOnly.fails(exitAPIError, "401 unauthorized", "node", "add", "https://n3.example.com", "--capacity", "1")
	apiOnly.fails(exitAPIError, "401 unauthorized", "node", "list", "--api-token", "wrong")
	cli.fails(exitAPIError, "409", "service", "delete", svc)
	if after := requestCounts(t, m); after["POST"] != before["POST"]+2 || after["PATCH"] != before["PATCH"]+1 ||
		after["DELETE"] != before["DELETE"]+1 {
		// The refused writes: two adds (409, 401), one PATCH of node 999,
		// the service delete; the unknown URLs sent no write at all.
		t.Fatalf("writes sent: %v → %v", before, after)
	}
	if stateAfter := cli.ok("node", "list", "--json").stdout; stateAfter != stateBefore {
		t.Fatalf("refused commands changed the nodes:\n%s\n→\n%s", stateBefore, stateAfter)
	}
	ports := freePorts(t, 1)
	bare.fails(exitUnreachable, "no answer from the member", "node", "list", "--addr", fmt.Sprintf("127.0.0.1:%d", ports[0]))

	// Unassign and remove, by URL.
	// Unassigning counts every record on the node, replaced ones too (u1's
	// first record is deleted by now).
	onN2 := int64(0)
	for _, u := range []wire.User{u1b, u2, u3} {
		if u.NodeID == n2.ID {
			onN2++
		}
	}
	var un struct{ Unassigned int64 }
	cli.okJSON(&un, "node", "unassign", n2URL)
	if un.Unassigned != onN2 {
		t.Fatalf("node unassign: %+v, want %d", un, onN2)
	}
	if r := cli.ok("node", "remove", n1URL); !strings.HasPrefix(r.stdout, "removed "+n1URL+" (id "+n1ID+"); unassigned ") {
		t.Fatalf("node remove table: %q", r.stdout)
	}
	cli.okJSON(&nodes, "node", "list")
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].ID != n2.ID {
		t.Fatalf("nodes after remove: %+v", nodes.Nodes)
	}
	records := fmt.Sprintf("%d records", onN2)
	if onN2 == 1 {
		records = "1 record"
	}
	if r := cli.ok("node", "remove", n2ID); r.stdout != fmt.Sprintf("removed node %s; unassigned %s\n", n2ID, records) {
		t.Fatalf("node remove by id: %q", r.stdout)
	}

	// Which lookup the member served is only reported: a member with
	// GET .../nodes?node= answers it, an older one refuses the parameter
	// and the CLI lists and filters; the session above passes with either.
	if refused := requestCounts(t, m)["GET 400"]; refused > 0 {
		t.Logf("the member refused ?node= %v times: node URLs were resolved by listing the service's nodes", refused)
	} else {
		t.Log("the member answered the ?node= lookups")
	}

	// A delete that fails part way says which records it deleted before.
	u2UID := strconv.FormatInt(u2.UID, 10)
	cli.fails(exitAPIError, "delete record 999999 of sync-1.5: 404 not-found", "records", "delete", "999999", u2UID)
	u3UID := strconv.FormatInt(u3.UID, 10)
	cli.fails(exitAPIError, "(deleted before it: ["+u3UID+"])", "records", "delete", u3UID, "999999")
	cli.fails(exitAPIError, "404 not-found", "records", "delete", u3UID)
	cli.okJSON(&deleted, "records", "delete", u2UID) // the first failure stopped before it
	if len(deleted.Deleted) != 1 || deleted.Deleted[0] != u2.UID {
		t.Fatalf("records delete --json: %+v", deleted)
	}

	// A second, empty service is deleted.
	cli.ok("service", "put", "sync-1.1", "--pattern", "{node}/1.1/{uid}", "--allow-new-users=false", "--spread", "2")
	var gone struct{ Deleted string }
	cli.okJSON(&gone, "service", "delete", "sync-1.1")
	if gone.Deleted != "sync-1.1" {
		t.Fatalf("service delete --json: %+v", gone)
	}
	cli.okJSON(&svcList, "service", "list")
	if len(svcList.Services) != 1 || svcList.Services[0].Service != svc {
		t.Fatalf("services after the delete: %+v", svcList.Services)
	}
}

// TestAdminCLIOverTLS: against a member serving HTTPS with a cluster CA
// (made by `wimms tls`), the admin commands work with --tls-ca, a bare
// HOST:PORT then meaning https; without the CA the member's certificate
// is refused before anything is sent.
func TestAdminCLIOverTLS(t *testing.T) {
	e := newSecureEnv(t)
	m := e.member("tls-cli", "z1")
	m.start()
	e.waitReady(m)
	cli := adminCLI{t: t, base: []string{"--addr", m.HTTPAddr, "--tls-ca", e.caFile}}

	cli.ok("service", "put", "sync-1.5", "--pattern", "{node}/1.5/{uid}")
	cli.ok("node", "add", "https://n1.example.com", "--capacity", "10")
	var n wire.Node
	cli.okJSON(&n, "node", "down", "https://n1.example.com")
	if !n.Downed || n.Node != "https://n1.example.com" {
		t.Fatalf("node down over HTTPS: %+v", n)
	}
	if r := cli.ok("node", "list", "--consistency", "linearizable"); r.row(t, strconv.FormatInt(n.ID, 10))[5] != "true" {
		t.Fatalf("node list over HTTPS:\n%s", r.stdout)
	}

	bare := adminCLI{t: t}
	bare.fails(exitUnreachable, "certificate", "node", "list", "--addr", "https://"+m.HTTPAddr)
	bare.fails(exitUsage, "plain http but --tls-ca is set", "node", "list", "--addr", "http://"+m.HTTPAddr, "--tls-ca", e.caFile)
}
