// Package mysqlimport moves the node-assignment data of Mozilla's token
// server between its MySQL schema (tables services, nodes and users, with
// or without users.keys_changed_at) and a wimms cluster: Import reads one
// consistent snapshot of the database and writes it through Raft in
// batches (fsm.OpImport); Export writes a wimms state back into empty
// tables. The repair rules for rows wimms cannot hold as they are live
// here and are documented in docs/operations.md.
package mysqlimport

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// DefaultPattern is the token server's endpoint pattern, used for a service
// whose pattern is NULL.
const DefaultPattern = "{node}/1.5/{uid}"

// Anomaly kinds.
const (
	AnomalyTwoLiveRecords  = "two-live-records" // an older live record is marked replaced at the current record's created_at
	AnomalyUnknownNode     = "unknown-node"     // the record's node does not exist: a live one is marked replaced at its own created_at
	AnomalyGenerationOrder = "generation-order" // generation/keys_changed_at below an older record's: kept, reported
	AnomalyInvalidRow      = "invalid-row"      // a value wimms cannot hold: the row is skipped
	AnomalyNullPattern     = "null-pattern"     // a service without a pattern gets DefaultPattern
	AnomalyOtherService    = "node-of-other-service"
)

// maxListedAnomalies bounds the anomalies the summary lists one by one;
// the counts per kind are always complete.
const maxListedAnomalies = 1000

// Anomaly is one row that broke a wimms invariant, and what was done.
type Anomaly struct {
	Kind    string `json:"kind"`
	UID     int64  `json:"uid,omitempty"`
	Service string `json:"service,omitempty"`
	Email   string `json:"email,omitempty"`
	Detail  string `json:"detail"`
}

// NodeDrift is a node whose stored current_load disagrees with its records.
type NodeDrift struct {
	NodeID  int64  `json:"node_id"`
	Node    string `json:"node"`
	Stored  int64  `json:"stored_current_load"`
	Records int64  `json:"records"`
	Drift   int64  `json:"drift"` // stored - records
}

// Summary is what a run did.
type Summary struct {
	Schema           string           `json:"schema"` // "with keys_changed_at" or "without keys_changed_at"
	RowsRead         int64            `json:"rows_read"`
	Imported         int64            `json:"imported"`
	Updated          int64            `json:"updated"`
	Unchanged        int64            `json:"unchanged"`
	Skipped          int64            `json:"skipped"`
	Batches          int64            `json:"batches"`
	AnomalyCounts    map[string]int64 `json:"anomaly_counts"`
	Anomalies        []Anomaly        `json:"anomalies"`
	AnomaliesElided  int64            `json:"anomalies_not_listed"`
	LoadDrift        []NodeDrift      `json:"load_drift"`
	Seconds          float64          `json:"seconds"`
	RowsPerSecond    float64          `json:"rows_per_second"`
	ServicesImported []string         `json:"services"`
}

// Sink receives batches (a running cluster: ClientSink).
type Sink interface {
	Import(ctx context.Context, b *wire.ImportBatch) (*wire.ImportResult, error)
}

// ClientSink writes batches through the HTTP API.
type ClientSink struct{ C *client.Client }

func (s ClientSink) Import(ctx context.Context, b *wire.ImportBatch) (*wire.ImportResult, error) {
	res, _, err := s.C.Import(ctx, b)
	return res, err
}

// Options tune a run.
type Options struct {
	BatchSize int // records per batch; default 2000, at most fsm.MaxImportBatch
	// Progress is called as user rows are read (pass 2) with the rows
	// done and the total; it must be cheap.
	Progress func(done, total int64)
}

func (o *Options) batchSize() int {
	switch {
	case o.BatchSize <= 0:
		return 2000
	case o.BatchSize > fsm.MaxImportBatch-100:
		return fsm.MaxImportBatch - 100
	}
	return o.BatchSize
}

type nodeInfo struct {
	id, service int64
	url         string
	load        int64
	records     int64
}

type run struct {
	conn     *sql.Conn
	sink     Sink
	opts     Options
	sum      *Summary
	services map[int64]string // id → name
	nodes    map[int64]*nodeInfo
	nodeIDs  []int64
	hasKCA   bool
	batch    wire.ImportBatch
}

func (r *run) anomaly(a Anomaly) {
	r.sum.AnomalyCounts[a.Kind]++
	if len(r.sum.Anomalies) < maxListedAnomalies {
		r.sum.Anomalies = append(r.sum.Anomalies, a)
	} else {
		r.sum.AnomaliesElided++
	}
}

// Import reads the token-server tables of db from ONE consistent snapshot
// (START TRANSACTION WITH CONSISTENT SNAPSHOT on one connection, so every
// query sees the same database), streaming the users table twice (by uid,
// then by user), and writes services, nodes and records to sink in
// batches. It is safe to run again: records are matched by uid, and an
// unchanged source changes nothing.
func Import(ctx context.Context, db *sql.DB, sink Sink, opts Options) (*Summary, error) {
	start := time.Now()
	sum := &Summary{AnomalyCounts: map[string]int64{}, Anomalies: []Anomaly{}, LoadDrift: []NodeDrift{}}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("mysql: connecting: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return nil, fmt.Errorf("mysql: setting isolation level: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return nil, fmt.Errorf("mysql: starting a consistent snapshot: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.Background(), "ROLLBACK") }()
	r := &run{conn: conn, sink: sink, opts: opts, sum: sum, services: map[int64]string{}, nodes: map[int64]*nodeInfo{}}
	if r.hasKCA, err = hasColumn(ctx, conn, "users", "keys_changed_at"); err != nil {
		return nil, err
	}
	sum.Schema = "without keys_changed_at"
	if r.hasKCA {
		sum.Schema = "with keys_changed_at"
	}
	steps := []func(context.Context) error{r.readServices, r.readNodes, r.flushServicesAndNodes, r.passByUID, r.passByUser}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return sum, err
		}
	}
	for _, id := range r.nodeIDs {
		n := r.nodes[id]
		if n.load != n.records {
			sum.LoadDrift = append(sum.LoadDrift, NodeDrift{NodeID: id, Node: n.url, Stored: n.load, Records: n.records, Drift: n.load - n.records})
		}
	}
	sum.Seconds = time.Since(start).Seconds()
	if sum.Seconds > 0 {
		sum.RowsPerSecond = float64(sum.RowsRead) / sum.Seconds
	}
	return sum, nil
}

func hasColumn(ctx context.Context, conn *sql.Conn, table, column string) (bool, error) {
	var n int
	err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?`, table, column).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("mysql: reading the schema of %s: %w", table, err)
	}
	return n > 0, nil
}

func (r *run) readServices(ctx context.Context) error {
	return r.eachRow(ctx, "services", "SELECT id, service, pattern FROM services ORDER BY id", func(rows *sql.Rows) error {
		var id int64
		var name, pattern sql.NullString
		if err := rows.Scan(&id, &name, &pattern); err != nil {
			return err
		}
		r.sum.RowsRead++
		if !name.Valid || wire.CheckServiceName(name.String) != "" {
			r.sum.Skipped++
			r.anomaly(Anomaly{Kind: AnomalyInvalidRow, Detail: fmt.Sprintf("service id %d: name %q is not a wimms service name; its nodes and users are skipped", id, name.String)})
			return nil
		}
		p := pattern.String
		if !pattern.Valid || p == "" {
			p = DefaultPattern
			r.anomaly(Anomaly{Kind: AnomalyNullPattern, Service: name.String, Detail: "pattern is NULL: imported as " + DefaultPattern})
		}
		r.services[id] = name.String
		r.sum.ServicesImported = append(r.sum.ServicesImported, name.String)
		r.batch.Services = append(r.batch.Services, wire.ImportService{ID: id, Service: name.String, Pattern: p})
		return nil
	})
}

func (r *run) readNodes(ctx context.Context) error {
	const query = "SELECT id, service, node, available, current_load, capacity, downed, backoff FROM nodes ORDER BY id"
	return r.eachRow(ctx, "nodes", query, func(rows *sql.Rows) error {
		var id, svc, available, load, capacity, downed, backoff int64
		var url string
		if err := rows.Scan(&id, &svc, &url, &available, &load, &capacity, &downed, &backoff); err != nil {
			return err
		}
		r.sum.RowsRead++
		name, ok := r.services[svc]
		if !ok || url == "" || len(url) > 64 || capacity < 0 || available < 0 || id < 1 {
			r.sum.Skipped++
			r.anomaly(Anomaly{Kind: AnomalyInvalidRow, Detail: fmt.Sprintf("node id %d (%q, service %d): unknown service or invalid values; skipped", id, url, svc)})
			return nil
		}
		r.nodes[id] = &nodeInfo{id: id, service: svc, url: url, load: load}
		r.nodeIDs = append(r.nodeIDs, id)
		r.batch.Nodes = append(r.batch.Nodes, wire.ImportNode{ID: id, Service: name, Node: url, Capacity: capacity,
			Available: available, Downed: downed != 0, Backoff: backoff != 0})
		return nil
	})
}

// eachRow runs query and calls row for every result row. A failed query,
// scan or read is "mysql: reading what: ..."; an errFlush from row (the
// sink failed) is passed on as it is.
func (r *run) eachRow(ctx context.Context, what, query string, row func(*sql.Rows) error) error {
	rows, err := r.conn.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("mysql: reading %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			if f, ok := err.(errFlush); ok {
				return f.err
			}
			return fmt.Errorf("mysql: reading %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: reading %s: %w", what, err)
	}
	return nil
}

// errFlush carries a sink's error through eachRow unchanged.
type errFlush struct{ err error }

func (e errFlush) Error() string { return e.err.Error() }

func (r *run) flushServicesAndNodes(ctx context.Context) error {
	// Services and nodes are few (a handful to hundreds); send them in
	// batches of the same bound as records.
	services, nodes := r.batch.Services, r.batch.Nodes
	r.batch = wire.ImportBatch{}
	if err := flushInChunks(ctx, r, services, &r.batch.Services); err != nil {
		return err
	}
	return flushInChunks(ctx, r, nodes, &r.batch.Nodes)
}

// flushInChunks sends items batch-size at a time: each chunk is put in
// *slot (a field of r.batch) and flushed.
func flushInChunks[T any](ctx context.Context, r *run, items []T, slot *[]T) error {
	size := r.opts.batchSize()
	for len(items) > 0 {
		n := min(size, len(items))
		*slot, items = items[:n], items[n:]
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// passByUID streams the users table in uid order and counts the records
// on each node (for the load drift). created_at is kept as the source
// holds it, in whatever order its uids have.
func (r *run) passByUID(ctx context.Context) error {
	return r.eachRow(ctx, "users by uid", "SELECT uid, service, created_at, nodeid FROM users ORDER BY uid", func(rows *sql.Rows) error {
		var uid, svc, created, node int64
		if err := rows.Scan(&uid, &svc, &created, &node); err != nil {
			return err
		}
		if _, ok := r.services[svc]; !ok || created < 0 {
			return nil // skipped in pass 2, with its anomaly
		}
		if n := r.nodes[node]; n != nil && n.service == svc {
			n.records++
		}
		return nil
	})
}

type userRow struct {
	uid, svc, generation, created, node int64
	email, clientState                  string
	replaced, kca                       sql.NullInt64
}

// passByUser streams users grouped by (service, email), uid ascending,
// repairs each user's records as a whole and sends them in batches.
func (r *run) passByUser(ctx context.Context) error {
	var total int64
	if err := r.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&total); err != nil {
		return fmt.Errorf("mysql: counting users: %w", err)
	}
	cols := "uid, service, email, generation, client_state, created_at, replaced_at, nodeid"
	if r.hasKCA {
		cols += ", keys_changed_at"
	}
	var group []userRow
	var done int64
	err := r.eachRow(ctx, "users", "SELECT "+cols+" FROM users ORDER BY service, email, uid", func(rows *sql.Rows) error {
		var u userRow
		dest := []any{&u.uid, &u.svc, &u.email, &u.generation, &u.clientState, &u.created, &u.replaced, &u.node}
		if r.hasKCA {
			dest = append(dest, &u.kca)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		r.sum.RowsRead++
		done++
		if r.opts.Progress != nil {
			r.opts.Progress(done, total)
		}
		if len(group) > 0 && (group[0].svc != u.svc || group[0].email != u.email) {
			r.addUser(group)
			group = group[:0]
			if len(r.batch.Records) >= r.opts.batchSize() {
				if err := r.flush(ctx); err != nil {
					return errFlush{err}
				}
			}
		}
		group = append(group, u)
		return nil
	})
	if err != nil {
		return err
	}
	if len(group) > 0 {
		r.addUser(group)
	}
	return r.flush(ctx)
}

// addUser applies the repair rules to one user's rows (uid ascending) and
// queues the records.
func (r *run) addUser(rows []userRow) {
	var recs []wire.ImportRecord
	for _, u := range rows {
		name, ok := r.services[u.svc]
		if reason := invalidRow(u); !ok || reason != "" {
			if !ok {
				reason = fmt.Sprintf("unknown service id %d", u.svc)
			}
			r.sum.Skipped++
			r.anomaly(Anomaly{Kind: AnomalyInvalidRow, UID: u.uid, Service: name, Email: u.email, Detail: reason + "; skipped"})
			continue
		}
		if n := r.nodes[u.node]; n != nil && n.service != u.svc {
			r.sum.Skipped++
			r.anomaly(Anomaly{Kind: AnomalyOtherService, UID: u.uid, Service: name, Email: u.email,
				Detail: fmt.Sprintf("node %d belongs to another service; skipped", u.node)})
			continue
		}
		rec := wire.ImportRecord{UID: u.uid, Service: name, Email: u.email, NodeID: u.node, Generation: u.generation,
			ClientState: u.clientState, CreatedAt: u.created}
		if u.kca.Valid {
			v := u.kca.Int64
			rec.KeysChangedAt = &v
		}
		if u.replaced.Valid {
			v := u.replaced.Int64
			rec.ReplacedAt = &v
		}
		if r.nodes[u.node] == nil {
			detail := fmt.Sprintf("node %d does not exist (removed): imported reading as no node", u.node)
			if rec.ReplacedAt == nil {
				v := rec.CreatedAt
				rec.ReplacedAt = &v
				detail = fmt.Sprintf("live record on node %d that does not exist: marked replaced at its created_at, the user is re-allocated on next login", u.node)
			}
			r.anomaly(Anomaly{Kind: AnomalyUnknownNode, UID: u.uid, Service: name, Email: u.email, Detail: detail})
		}
		recs = append(recs, rec)
	}
	for i := 1; i < len(recs); i++ {
		prev, cur := &recs[i-1], &recs[i]
		if cur.Generation < prev.Generation || (prev.KeysChangedAt != nil && (cur.KeysChangedAt == nil || *cur.KeysChangedAt < *prev.KeysChangedAt)) {
			// Kept as it is: sign-ins compare with the current record only,
			// as Mozilla's server does. Reported, since the source's history
			// is unusual.
			r.anomaly(Anomaly{Kind: AnomalyGenerationOrder, UID: cur.UID, Service: cur.Service, Email: cur.Email,
				Detail: "generation or keys_changed_at below the user's older record: kept as it is"})
		}
	}
	// Race recovery as Mozilla's token server does it on the next sign-in:
	// every older live record is marked replaced at the created_at of the
	// user's current (newest) record.
	if n := len(recs); n > 1 {
		cur := recs[n-1]
		for i := 0; i+1 < n; i++ {
			if recs[i].ReplacedAt == nil {
				v := cur.CreatedAt
				recs[i].ReplacedAt = &v
				r.anomaly(Anomaly{Kind: AnomalyTwoLiveRecords, UID: recs[i].UID, Service: recs[i].Service, Email: recs[i].Email,
					Detail: fmt.Sprintf("live but older than the current uid %d: marked replaced at its created_at %d", cur.UID, v)})
			}
		}
	}
	r.batch.Records = append(r.batch.Records, recs...)
}

func invalidRow(u userRow) string {
	switch {
	case u.uid < 1:
		return "uid below 1"
	case wire.CheckEmail(u.email) != "":
		return "email is not 1-255 printable characters without '/'"
	case wire.CheckClientState(u.clientState) != "":
		return fmt.Sprintf("client_state %q is not [A-Za-z0-9._-]{0,32}", u.clientState)
	case u.generation < 0:
		return "negative generation"
	case u.created < 0:
		return "negative created_at"
	case u.replaced.Valid && u.replaced.Int64 < 0:
		return "negative replaced_at"
	case u.kca.Valid && u.kca.Int64 < 0:
		return "negative keys_changed_at"
	case u.node < 1:
		return "nodeid below 1"
	}
	return ""
}

func (r *run) flush(ctx context.Context) error {
	b := &r.batch
	if len(b.Services)+len(b.Nodes)+len(b.Records) == 0 {
		return nil
	}
	res, err := r.sink.Import(ctx, b)
	if err != nil {
		first := int64(0)
		if len(b.Records) > 0 {
			first = b.Records[0].UID
		}
		return fmt.Errorf("writing batch %d (%d records from uid %d): %w", r.sum.Batches+1, len(b.Records), first, err)
	}
	r.sum.Batches++
	for _, c := range []wire.ImportCount{res.Services, res.Nodes, res.Records} {
		r.sum.Imported += c.Created
		r.sum.Updated += c.Updated
		r.sum.Unchanged += c.Unchanged
	}
	r.batch = wire.ImportBatch{}
	return nil
}

// ErrNotEmpty is returned by Export when a target table holds rows.
var ErrNotEmpty = errors.New("target tables are not empty")
