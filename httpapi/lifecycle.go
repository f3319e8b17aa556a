package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// Data lifecycle endpoints (docs/api.md "Import and backup"): POST
// /v1/import writes one batch of imported services, nodes and records
// through Raft (fsm.OpImport); GET /v1/backup streams a consistent backup.
// Both are admin routes of kind raw: their bodies are larger than the
// API's object limit and not a flat object.

const (
	routeImport = "import"
	routeBackup = "backup"

	// MaxImportBodyBytes bounds one import batch's JSON (fsm.MaxImportBatch
	// records of a few hundred bytes each).
	MaxImportBodyBytes = 16 << 20
)

// lifecycleRoutes are appended to routes().
func (s *Server) lifecycleRoutes() []route {
	return []route{
		{name: routeImport, method: http.MethodPost, path: "/v1/import", access: accessAdmin, kind: kindRaw, handle: s.importBatch},
		{name: routeBackup, method: http.MethodGet, path: "/v1/backup", access: accessAdmin, kind: kindRaw, handle: s.backup},
	}
}

// BackupSource is implemented by *store.Store. A Store without it answers
// 501 on /v1/backup.
type BackupSource interface {
	Backup(ctx context.Context) (*store.Backup, error)
}

func nullable(p *int64) int64 {
	if p == nil {
		return fsm.Null
	}
	return *p
}

// importBatchToFSM converts the wire batch into the command payload.
func importBatchToFSM(b *wire.ImportBatch) *fsm.ImportBatch {
	out := &fsm.ImportBatch{}
	for _, s := range b.Services {
		out.Services = append(out.Services, fsm.ImportService{ID: s.ID, Name: s.Service, Pattern: s.Pattern})
	}
	for _, n := range b.Nodes {
		out.Nodes = append(out.Nodes, fsm.ImportNode{ID: n.ID, Service: n.Service, URL: n.Node, Capacity: n.Capacity,
			Available: n.Available, Downed: n.Downed, Backoff: n.Backoff})
	}
	out.Records = make([]fsm.ImportRecord, 0, len(b.Records))
	for _, r := range b.Records {
		out.Records = append(out.Records, fsm.ImportRecord{UID: r.UID, Service: r.Service, Email: r.Email, NodeID: r.NodeID,
			Generation: r.Generation, KeysChangedAt: nullable(r.KeysChangedAt), ClientState: r.ClientState,
			CreatedAt: r.CreatedAt, ReplacedAt: nullable(r.ReplacedAt)})
	}
	return out
}

func countJSON(c fsm.ImportCount) wire.ImportCount {
	return wire.ImportCount{Created: c.Created, Updated: c.Updated, Unchanged: c.Unchanged}
}

func (s *Server) importBatch(rq *request) {
	body, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, MaxImportBodyBytes))
	if err != nil {
		rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, ErrorDetail{Location: LocationBody, Name: "body",
			Description: fmt.Sprintf("could not read body (at most %d bytes): %v", MaxImportBodyBytes, err)})
		return
	}
	rq.body = body
	var in wire.ImportBatch
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, ErrorDetail{Location: LocationBody, Name: "body",
			Description: "invalid import batch: " + err.Error()})
		return
	}
	if dec.More() {
		rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, ErrorDetail{Location: LocationBody, Name: "body",
			Description: "invalid import batch: data after the object"})
		return
	}
	if n := len(in.Services) + len(in.Nodes) + len(in.Records); n > fsm.MaxImportBatch {
		rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, ErrorDetail{Location: LocationBody, Name: "records",
			Description: fmt.Sprintf("a batch holds at most %d items, got %d", fsm.MaxImportBatch, n)})
		return
	}
	// OpImportKeepTimes: every created_at is kept as the source holds it.
	res, ok := rq.apply(fsm.Command{Op: fsm.OpImportKeepTimes, Import: importBatchToFSM(&in)})
	if !ok {
		return
	}
	if res.Import == nil {
		rq.internalError("import succeeded without counts")
		return
	}
	rq.writeJSON(http.StatusOK, wire.ImportResult{Services: countJSON(res.Import.Services),
		Nodes: countJSON(res.Import.Nodes), Records: countJSON(res.Import.Records)})
}

// HeaderBackupIndex carries the Raft index of a backup's state.
const HeaderBackupIndex = "X-Wimms-Backup-Index"

func (s *Server) backup(rq *request) {
	src, ok := s.store.(BackupSource)
	if !ok {
		rq.writeError(http.StatusNotImplemented, StatusInternalError, ErrorDetail{Location: LocationPath, Name: "backup",
			Description: "this member cannot take backups"})
		return
	}
	b, err := src.Backup(rq.r.Context())
	if err != nil {
		rq.storeError(err)
		return
	}
	// A backup of a large state outlasts any write timeout meant for API
	// answers; the client's context still bounds it.
	_ = http.NewResponseController(rq.w).SetWriteDeadline(time.Time{})
	h := rq.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="wimms-`+strconv.FormatUint(b.Info.Index, 10)+`.backup"`)
	h.Set(HeaderBackupIndex, strconv.FormatUint(b.Info.Index, 10))
	rq.meta = &store.Meta{Index: b.Info.Index, MemberID: s.store.Meta().MemberID}
	rq.setMetaHeaders()
	rq.w.WriteHeader(http.StatusOK)
	if _, err := b.WriteTo(rq.w); err != nil && !errors.Is(err, context.Canceled) {
		// The status is sent; the client sees a truncated file, which
		// restore refuses (the checksum trailer is missing).
		s.log.Error("streaming backup failed", "index", b.Info.Index, "error", err)
	}
}
