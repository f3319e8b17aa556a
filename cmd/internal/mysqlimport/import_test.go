package mysqlimport

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"reflect"
	"sort"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
)

func newPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

// row is a users row as the source holds it and, in expected, as wimms
// must hold it after the repair rules.
type row struct {
	uid, svc        int64
	email           string
	generation      int64
	clientState     string
	created         int64
	replaced, kca   *int64
	node            int64
	skipped         bool // expected: the importer must skip it
	expectedAnomaly string
}

type tokenDB struct {
	services []struct {
		id            int64
		name, pattern string
	}
	nodes []struct {
		id, svc                   int64
		url                       string
		available, load, capacity int64
		downed, backoff           bool
	}
	src      []row // as inserted, uid order
	expected map[int64]row
	withKCA  bool
}

var svcNames = map[int64]string{1: "sync-1.5", 2: "sync-1.1", 3: "queue-1.0"}

const base = int64(1_600_000_000_000)

// genTokenDB builds a token-server database of `users` users (about 1.6
// rows each) with replaced records, three services (one without a
// pattern), downed and backoff nodes, a load counter that drifts, and
// every anomaly the importer repairs, each with its expected outcome.
func genTokenDB(users int, withKCA bool) *tokenDB {
	d := &tokenDB{expected: map[int64]row{}, withKCA: withKCA}
	d.services = append(d.services, struct {
		id            int64
		name, pattern string
	}{1, "sync-1.5", "{node}/1.5/{uid}"}, struct {
		id            int64
		name, pattern string
	}{2, "sync-1.1", "{node}/1.1/{uid}"}, struct {
		id            int64
		name, pattern string
	}{3, "queue-1.0", ""})
	type nd = struct {
		id, svc                   int64
		url                       string
		available, load, capacity int64
		downed, backoff           bool
	}
	d.nodes = []nd{
		{1, 1, "https://s1.example", 10, 0, 1_000_000, false, false},
		{2, 1, "https://s2.example", 0, 0, 1_000_000, true, false},
		{3, 1, "https://s3.example", 5, 0, 1_000_000, false, true},
		{4, 1, "https://s4.example", 7, 0, 1_000_000, false, false},
		{5, 2, "https://t1.example", 3, 0, 1_000_000, false, false},
		{6, 2, "https://t2.example", 0, 0, 1_000_000, true, true},
		{7, 3, "https://q1.example", 1, 0, 1_000_000, false, false},
	}
	nodesOf := map[int64][]int64{1: {1, 2, 3, 4}, 2: {5, 6}, 3: {7}}
	recsOf := func(i int) int {
		switch i % 5 {
		case 0:
			return 3
		case 1:
			return 2
		}
		return 1
	}
	// Records are created in rounds (every user's first record, then the
	// second ones...), so a user's records are far apart in uid.
	byUser := make([][]int, users) // indexes into d.src
	uid := int64(0)
	for round := 0; round < 3; round++ {
		for i := 0; i < users; i++ {
			if recsOf(i) <= round {
				continue
			}
			uid++
			svc := int64(1)
			if i%10 == 8 {
				svc = 2
			} else if i%10 == 9 {
				svc = 3
			}
			ns := nodesOf[svc]
			r := row{uid: uid, svc: svc, email: fmt.Sprintf("%032x@api.accounts.firefox.com", i), generation: int64(10 + round),
				clientState: fmt.Sprintf("%032x", i*7+round), created: base + uid*7, node: ns[(i+round)%len(ns)]}
			if withKCA && i%3 != 0 {
				r.kca = ptr(int64(1000 + round))
			}
			if n := len(byUser[i]); n > 0 {
				prev := &d.src[byUser[i][n-1]]
				prev.replaced = ptr(r.created)
			}
			byUser[i] = append(byUser[i], len(d.src))
			d.src = append(d.src, r)
		}
	}
	for _, r := range d.src {
		d.expected[r.uid] = r
	}
	special := map[int]bool{}
	for i := 0; i < users; i++ {
		recs := byUser[i]
		switch {
		case i%1000 == 1, i%1000 == 30 && i < users*9/10: // two live records: the older is marked replaced at the current record's created_at
			d.src[recs[0]].replaced = nil
			if i%1000 == 30 { // three records: the first and the current are live
				d.src[recs[1]].replaced = ptr(d.src[recs[2]].created)
				e := d.expected[d.src[recs[1]].uid]
				e.replaced = ptr(d.src[recs[2]].created)
				d.expected[e.uid] = e
			}
			e := d.expected[d.src[recs[0]].uid]
			e.replaced = ptr(d.src[recs[len(recs)-1]].created)
			d.expected[e.uid] = e
			special[i] = true
		case i%1000 == 6: // live record on a removed node: replaced at its own created_at
			last := &d.src[recs[len(recs)-1]]
			last.node = 99
			e := d.expected[last.uid]
			e.node, e.replaced = 99, ptr(last.created)
			d.expected[last.uid] = e
			special[i] = true
		case i%1000 == 11: // replaced record on a removed node: as it is
			first := &d.src[recs[0]]
			first.node = 99
			e := d.expected[first.uid]
			e.node = 99
			d.expected[first.uid] = e
			special[i] = true
		case i%1000 == 16: // generation going down: kept, reported
			d.src[recs[1]].generation = 5
			e := d.expected[d.src[recs[1]].uid]
			e.generation = 5
			d.expected[e.uid] = e
			special[i] = true
		case i%1000 == 21: // invalid client state: skipped
			d.src[recs[1]].clientState = "bad!"
			e := d.expected[d.src[recs[1]].uid]
			e.skipped = true
			d.expected[e.uid] = e
			special[i] = true
		}
	}
	// created_at going down as uids grow (clock skew between the source's
	// hosts): kept as it is. The last rows are among those a catch-up
	// import brings.
	for _, k := range append(seq(2500, len(d.src), 5000), len(d.src)-2) {
		r := &d.src[k]
		var owner int
		fmt.Sscanf(r.email[:32], "%x", &owner)
		if special[owner] || d.src[k-1].created >= r.created {
			continue
		}
		r.created = d.src[k-1].created - 100
		e := d.expected[r.uid]
		e.created = r.created
		d.expected[r.uid] = e
	}
	// Load counters: true except node 1, which drifts by +5.
	counts := map[int64]int64{}
	for _, r := range d.src {
		counts[r.node]++
	}
	for i := range d.nodes {
		d.nodes[i].load = counts[d.nodes[i].id]
		if d.nodes[i].id == 1 {
			d.nodes[i].load += 5
		}
	}
	return d
}

func (d *tokenDB) insert(t *testing.T, db *sql.DB, from int) {
	t.Helper()
	if from == 0 {
		for _, s := range d.services {
			var p any = s.pattern
			if s.pattern == "" {
				p = nil
			}
			if _, err := db.Exec("INSERT INTO services (id, service, pattern) VALUES (?, ?, ?)", s.id, s.name, p); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range d.nodes {
			if _, err := db.Exec("INSERT INTO nodes (id, service, node, available, current_load, capacity, downed, backoff) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
				n.id, n.svc, n.url, n.available, n.load, n.capacity, boolInt(n.downed), boolInt(n.backoff)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cols := "uid, service, email, generation, client_state, created_at, replaced_at, nodeid"
	if d.withKCA {
		cols += ", keys_changed_at"
	}
	var vals []string
	flush := func() {
		if len(vals) == 0 {
			return
		}
		if _, err := db.Exec("INSERT INTO users (" + cols + ") VALUES " + joinRows(vals)); err != nil {
			t.Fatal(err)
		}
		vals = vals[:0]
	}
	for _, r := range d.src[from:] {
		v := fmt.Sprintf("(%d, %d, '%s', %d, '%s', %d, %s, %d", r.uid, r.svc, r.email, r.generation, r.clientState, r.created, sqlValue(r.replaced), r.node)
		if d.withKCA {
			v += ", " + sqlValue(r.kca)
		}
		vals = append(vals, v+")")
		if len(vals) == 2000 {
			flush()
		}
	}
	flush()
}

// checkState compares the whole wimms state (read back through the backup
// endpoint) with the expected records, and node loads and a sample of
// users through the API.
// kept is how many expected rows the import keeps (not skipped).
func (d *tokenDB) kept() int {
	n := 0
	for _, e := range d.expected {
		if !e.skipped {
			n++
		}
	}
	return n
}

func (d *tokenDB) checkState(t *testing.T, c *cluster) {
	t.Helper()
	f := c.backupState(t)
	seen := 0
	f.View().EachRecord(func(r fsm.Record) bool {
		e, ok := d.expected[r.UID]
		if !ok || e.skipped {
			t.Errorf("uid %d in wimms but not expected", r.UID)
			return false
		}
		seen++
		want := fsm.Record{UID: e.uid, Service: svcNames[e.svc], Email: e.email, NodeID: e.node, Generation: e.generation,
			KeysChangedAt: nullOf(e.kca), ClientState: e.clientState, CreatedAt: e.created, ReplacedAt: nullOf(e.replaced)}
		got := r
		got.NodeURL, got.NodeDowned = "", false
		if got != want {
			t.Errorf("uid %d:\n got %+v\nwant %+v", r.UID, got, want)
			return false
		}
		return true
	})
	if wantN := d.kept(); seen != wantN {
		t.Fatalf("wimms holds %d records, want %d", seen, wantN)
	}
	ctx := context.Background()
	loads := map[int64]int64{}
	for _, e := range d.expected {
		if !e.skipped {
			loads[e.node]++
		}
	}
	for _, name := range svcNames {
		nodes, _, err := c.client.ListNodes(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.CurrentLoad != loads[n.ID] {
				t.Errorf("node %d (%s): current_load %d, want %d", n.ID, n.Node, n.CurrentLoad, loads[n.ID])
			}
		}
	}
	// A sample of users through the records endpoint.
	uids := make([]int64, 0, len(d.expected))
	for uid := range d.expected {
		uids = append(uids, uid)
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	for k := 0; k < len(uids); k += len(uids)/150 + 1 {
		e := d.expected[uids[k]]
		recs, _, err := c.client.Records(ctx, svcNames[e.svc], e.email)
		if err != nil {
			t.Fatalf("records of %s: %v", e.email, err)
		}
		var want []int64
		for _, x := range d.expected {
			if x.email == e.email && x.svc == e.svc && !x.skipped {
				want = append(want, x.uid)
			}
		}
		sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
		var got []int64
		for _, r := range recs {
			got = append(got, r.UID)
			x := d.expected[r.UID]
			if r.CreatedAt != x.created || !reflect.DeepEqual(r.ReplacedAt, x.replaced) || r.Generation != x.generation {
				t.Errorf("API record %d: %+v, want %+v", r.UID, r, x)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("API records of %s: uids %v, want %v", e.email, got, want)
		}
	}
}

// seq is from, from+step, … below to.
func seq(from, to, step int) []int {
	var out []int
	for k := from; k < to; k += step {
		out = append(out, k)
	}
	return out
}

func nullOf(p *int64) int64 {
	if p == nil {
		return fsm.Null
	}
	return *p
}

func countAnomalies(s *Summary) int64 {
	n := int64(0)
	for _, c := range s.AnomalyCounts {
		n += c
	}
	return n
}

// TestImportLargeDatabase: ≥100,000 user rows with every anomaly; import,
// re-run (nothing changes), catch up after source writes, export back and
// compare the tables.
func TestImportLargeDatabase(t *testing.T) {
	d := genTokenDB(65_000, true) // about 104,000 user rows
	if len(d.src) < 100_000 {
		t.Fatalf("generator made only %d rows", len(d.src))
	}
	// The last 1 % of the rows arrive in the source after the first run.
	initial := len(d.src) - len(d.src)/100
	db := newDatabase(t, "tokenserver_large", true)
	d.insert(t, db, 0)
	if _, err := db.Exec("DELETE FROM users WHERE uid > ?", d.src[initial-1].uid); err != nil {
		t.Fatal(err)
	}
	full := d.expected
	d.expected = map[int64]row{}
	for uid, e := range full {
		if uid <= d.src[initial-1].uid {
			d.expected[uid] = e
		}
	}
	// The cut leaves some users with an older record still replaced by a
	// record that does not exist yet: that is the source's state, kept.
	c := startMember(t, t.TempDir(), "m1", testutil.FreeAddr(t, "127.0.0.1"))
	ctx := context.Background()
	sink := ClientSink{C: c.client}

	sum, err := Import(ctx, db, sink, Options{BatchSize: 5000})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	t.Logf("first run: %d rows in %.1fs (%.0f rows/s), %d anomalies", sum.RowsRead, sum.Seconds, sum.RowsPerSecond, countAnomalies(sum))
	wantRows := int64(initial + len(d.services) + len(d.nodes))
	if sum.RowsRead != wantRows {
		t.Fatalf("rows read %d, want %d", sum.RowsRead, wantRows)
	}
	skipped := int64(len(d.expected) - d.kept())
	if sum.Skipped != skipped || sum.Imported != wantRows-skipped || sum.Updated != 0 {
		t.Fatalf("skipped %d imported %d updated %d; want skipped %d imported %d", sum.Skipped, sum.Imported, sum.Updated, skipped, wantRows-skipped)
	}
	for _, kind := range []string{AnomalyTwoLiveRecords, AnomalyUnknownNode, AnomalyGenerationOrder, AnomalyInvalidRow, AnomalyNullPattern} {
		if sum.AnomalyCounts[kind] == 0 {
			t.Errorf("no %s anomaly reported", kind)
		}
	}
	for _, a := range sum.Anomalies {
		if a.Kind != AnomalyNullPattern && a.UID == 0 {
			t.Errorf("anomaly without a uid: %+v", a)
		}
	}
	d.checkState(t, c)

	// The next uid wimms hands out is above every imported one.
	u, _, err := c.client.Allocate(ctx, "sync-1.5", wire.AllocateRequest{Email: "new-after-import@x"})
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != d.src[initial-1].uid+1 {
		t.Fatalf("new uid %d is not above the imported ones", u.UID)
	}
	if _, _, err := c.client.Retire(ctx, "sync-1.5", "new-after-import@x"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.DeleteRecord(ctx, "sync-1.5", u.UID); err != nil {
		t.Fatal(err)
	}

	// Re-run over an unchanged source: nothing changes.
	again, err := Import(ctx, db, sink, Options{BatchSize: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if again.Imported != 0 || again.Updated != 0 || again.Unchanged != wantRows-skipped {
		t.Fatalf("re-run changed something: imported %d updated %d unchanged %d", again.Imported, again.Updated, again.Unchanged)
	}

	// Catch-up: new rows arrive, one user's generation is bumped in place.
	d.expected = full
	d.insert(t, db, initial)
	bump := d.src[12] // a user with a single record
	if _, err := db.Exec("UPDATE users SET generation = generation + 100 WHERE uid = ?", bump.uid); err != nil {
		t.Fatal(err)
	}
	e := d.expected[bump.uid]
	e.generation += 100
	d.expected[bump.uid] = e
	// Records the cut had left as "replaced by a later record" are now
	// followed by it; their replaced_at did not change in the source.
	third, err := Import(ctx, db, sink, Options{BatchSize: 5000})
	if err != nil {
		t.Fatal(err)
	}
	// The source's load counters now match its rows except node 1's.
	if len(third.LoadDrift) != 1 || third.LoadDrift[0].NodeID != 1 || third.LoadDrift[0].Drift != 5 {
		t.Errorf("load drift %+v, want node 1 by +5 only", third.LoadDrift)
	}
	newRows := int64(len(d.src) - initial)
	newSkipped := int64(0)
	for _, r := range d.src[initial:] {
		if d.expected[r.uid].skipped {
			newSkipped++
		}
	}
	if third.Imported != newRows-newSkipped || third.Updated != 1 {
		t.Fatalf("catch-up: imported %d, updated %d; want %d imported, 1 updated", third.Imported, third.Updated, newRows-newSkipped)
	}
	d.checkState(t, c)

	// Export into empty tables and compare them with the source after the
	// repair rules.
	out := newDatabase(t, "tokenserver_export", true)
	esum, err := Export(ctx, out, c.backupState(t).View())
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if esum.Users != int64(len(d.src))-skipped-newSkipped || esum.Services != 3 || esum.Nodes != int64(len(d.nodes)) {
		t.Fatalf("export summary %+v", esum)
	}
	d.compareTables(t, out)
	// A second export into the now non-empty tables is refused.
	if _, err := Export(ctx, out, c.backupState(t).View()); err == nil {
		t.Fatalf("export into non-empty tables succeeded")
	}
}

// compareTables checks an exported database against the expected rows.
func (d *tokenDB) compareTables(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query("SELECT uid, service, email, generation, client_state, created_at, replaced_at, nodeid, keys_changed_at FROM users ORDER BY uid")
	if err != nil && d.withKCA {
		t.Fatal(err)
	}
	if !d.withKCA {
		rows, err = db.Query("SELECT uid, service, email, generation, client_state, created_at, replaced_at, nodeid, NULL FROM users ORDER BY uid")
		if err != nil {
			t.Fatal(err)
		}
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		r := scanUserRow(t, rows)
		e := d.expected[r.uid]
		e.expectedAnomaly = ""
		if e.skipped || r.svc != e.svc || r.email != e.email || r.generation != e.generation || r.clientState != e.clientState ||
			r.created != e.created || !reflect.DeepEqual(r.replaced, e.replaced) || r.node != e.node || !reflect.DeepEqual(r.kca, e.kca) {
			t.Fatalf("exported uid %d: %+v, want %+v", r.uid, r, e)
		}
		n++
	}
	if want := d.kept(); n != want {
		t.Fatalf("exported %d user rows, want %d", n, want)
	}
	for _, nd := range d.nodes {
		var load, cap, avail, downed, backoff int64
		var url string
		if err := db.QueryRow("SELECT node, current_load, capacity, available, downed, backoff FROM nodes WHERE id = ?", nd.id).Scan(&url, &load, &cap, &avail, &downed, &backoff); err != nil {
			t.Fatalf("node %d: %v", nd.id, err)
		}
		wantLoad := int64(0)
		for _, e := range d.expected {
			if e.node == nd.id && !e.skipped {
				wantLoad++
			}
		}
		if url != nd.url || load != wantLoad || cap != nd.capacity || avail != nd.available || (downed != 0) != nd.downed || (backoff != 0) != nd.backoff {
			t.Fatalf("exported node %d: %s load %d cap %d avail %d downed %d backoff %d", nd.id, url, load, cap, avail, downed, backoff)
		}
	}
	var pattern string
	if err := db.QueryRow("SELECT pattern FROM services WHERE id = 3").Scan(&pattern); err != nil || pattern != DefaultPattern {
		t.Fatalf("service 3 pattern %q (%v)", pattern, err)
	}
}

// TestImportPythonSchema: the older schema without keys_changed_at, round
// trip through import and export.
func TestImportPythonSchema(t *testing.T) {
	d := genTokenDB(2_000, false)
	db := newDatabase(t, "tokenserver_py", false)
	d.insert(t, db, 0)
	c := startMember(t, t.TempDir(), "m1", testutil.FreeAddr(t, "127.0.0.1"))
	// A row the token server writes while the import runs is not seen by
	// it (one consistent snapshot), and the next run picks it up.
	late := row{uid: d.src[len(d.src)-1].uid + 1, svc: 1, email: "late@x", generation: 1, clientState: "cc",
		created: d.src[len(d.src)-1].created + 1, node: 1}
	sink := &writeDuringImport{Sink: ClientSink{C: c.client}, write: func() {
		if _, err := db.Exec("INSERT INTO users (uid, service, email, generation, client_state, created_at, replaced_at, nodeid) VALUES (?, 1, ?, 1, 'cc', ?, NULL, 1)",
			late.uid, late.email, late.created); err != nil {
			t.Errorf("concurrent insert: %v", err)
		}
	}}
	sum, err := Import(context.Background(), db, sink, Options{BatchSize: 500})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if sum.Schema != "without keys_changed_at" {
		t.Fatalf("schema %q", sum.Schema)
	}
	if sum.RowsRead != int64(len(d.src)+len(d.services)+len(d.nodes)) {
		t.Fatalf("the import saw a row written after its snapshot began: %d rows read", sum.RowsRead)
	}
	d.checkState(t, c)
	again, err := Import(context.Background(), db, ClientSink{C: c.client}, Options{})
	if err != nil || again.Imported != 1 || again.Updated != 0 {
		t.Fatalf("catch-up of the late row: %+v %v", again, err)
	}
	d.expected[late.uid] = late
	d.checkState(t, c)
	out := newDatabase(t, "tokenserver_py_export", false)
	if _, err := Export(context.Background(), out, c.backupState(t).View()); err != nil {
		t.Fatalf("export: %v", err)
	}
	d.compareTables(t, out)
}

// writeDuringImport runs write once, after the first batch was sent: the
// import's snapshot is open by then.
type writeDuringImport struct {
	Sink
	write func()
	done  bool
}

func (w *writeDuringImport) Import(ctx context.Context, b *wire.ImportBatch) (*wire.ImportResult, error) {
	res, err := w.Sink.Import(ctx, b)
	if !w.done {
		w.done = true
		w.write()
	}
	return res, err
}

// TestImportExportKeepsEveryByte: a source that needs no repair, with
// created_at going down as uids grow in many places, comes back from
// import then export row for row, byte for byte; a catch-up run whose
// new row is created before a lower uid is accepted too.
func TestImportExportKeepsEveryByte(t *testing.T) {
	g := genTokenDB(3_000, true)
	// Keep only users whose every row is imported as it is.
	clean := map[string]bool{}
	for _, r := range g.src {
		if _, seen := clean[r.email]; !seen {
			clean[r.email] = true
		}
		if e := g.expected[r.uid]; e.skipped || !reflect.DeepEqual(e, r) || r.node == 99 {
			clean[r.email] = false
		}
	}
	d := &tokenDB{services: g.services, nodes: g.nodes, expected: map[int64]row{}, withKCA: true}
	skew := 0
	for _, r := range g.src {
		if !clean[r.email] {
			continue
		}
		if n := len(d.src); n > 0 && n%7 == 0 && r.replaced == nil {
			// A live record created (by the source's clock) well before
			// the lower uid: every seventh row.
			r.created = d.src[n-1].created - 1000
			skew++
		}
		d.src = append(d.src, r)
		d.expected[r.uid] = r
	}
	if skew < 100 || len(d.src) < 2000 {
		t.Fatalf("generator: %d rows, %d out of order", len(d.src), skew)
	}
	for i := range d.nodes {
		d.nodes[i].load = 0
	}
	for _, r := range d.src {
		for i := range d.nodes {
			if d.nodes[i].id == r.node {
				d.nodes[i].load++
			}
		}
	}
	db := newDatabase(t, "tokenserver_exact", true)
	d.insert(t, db, 0)
	c := startMember(t, t.TempDir(), "m1", testutil.FreeAddr(t, "127.0.0.1"))
	ctx := context.Background()
	sum, err := Import(ctx, db, ClientSink{C: c.client}, Options{BatchSize: 700})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	// Reported without a change to any users row: the service without a
	// pattern (it gets the default) and generations going down (kept).
	if sum.AnomalyCounts[AnomalyGenerationOrder] == 0 {
		t.Fatalf("the clean source lost its generation going down: %+v", sum.AnomalyCounts)
	}
	if n := countAnomalies(sum) - sum.AnomalyCounts[AnomalyNullPattern] - sum.AnomalyCounts[AnomalyGenerationOrder]; n != 0 || sum.Skipped != 0 {
		t.Fatalf("%d anomalies, %d skipped on a clean source: %+v", n, sum.Skipped, sum.Anomalies)
	}
	// Catch-up: a new user whose record is older than every imported one.
	late := row{uid: d.src[len(d.src)-1].uid + 1, svc: 1, email: "late@x", generation: 3, clientState: "cc",
		created: d.src[0].created - 5000, node: 1, kca: ptr(int64(2))}
	d.src = append(d.src, late)
	d.expected[late.uid] = late
	d.insert(t, db, len(d.src)-1)
	again, err := Import(ctx, db, ClientSink{C: c.client}, Options{})
	if err != nil || again.Imported != 1 {
		t.Fatalf("catch-up of a row created before the lower uids: %+v %v", again, err)
	}
	d.checkState(t, c)
	out := newDatabase(t, "tokenserver_exact_export", true)
	if _, err := Export(ctx, out, c.backupState(t).View()); err != nil {
		t.Fatalf("export: %v", err)
	}
	// Row for row against the source itself.
	n := 0
	rows, err := out.Query("SELECT uid, service, email, generation, client_state, created_at, replaced_at, nodeid, keys_changed_at FROM users ORDER BY uid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for ; rows.Next(); n++ {
		r := scanUserRow(t, rows)
		if n >= len(d.src) || !reflect.DeepEqual(r, d.src[n]) {
			t.Fatalf("exported row %d: %+v, source %+v", n, r, d.src[min(n, len(d.src)-1)])
		}
	}
	if n != len(d.src) {
		t.Fatalf("exported %d rows, the source has %d", n, len(d.src))
	}
}

// scanUserRow reads one users row selected as uid, service, email,
// generation, client_state, created_at, replaced_at, nodeid,
// keys_changed_at.
func scanUserRow(t *testing.T, rows *sql.Rows) row {
	t.Helper()
	var r row
	var replaced, kca sql.NullInt64
	if err := rows.Scan(&r.uid, &r.svc, &r.email, &r.generation, &r.clientState, &r.created, &replaced, &r.node, &kca); err != nil {
		t.Fatal(err)
	}
	if replaced.Valid {
		r.replaced = &replaced.Int64
	}
	if kca.Valid {
		r.kca = &kca.Int64
	}
	return r
}
