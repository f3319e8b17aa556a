package httpapi

import (
	"net/http"
	"sort"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// ---- services ----

func (s *Server) putService(rq *request) {
	f := rq.fields
	pattern := f.String("pattern", true, checkPattern)
	rate := f.ReleaseRate("release_rate")
	allow := f.Bool("allow_new_users")
	spread := f.Int64("spread", false, 1)
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpPutService, Service: rq.service,
		Pattern: pattern, ReleaseRate: rate, AllowNewUsers: allow, Spread: spread})
	if !ok {
		return
	}
	if res.Service == nil {
		rq.internalError("put service succeeded without a service")
		return
	}
	code := http.StatusOK
	if res.Created {
		code = http.StatusCreated
	}
	rq.writeJSON(code, toServiceJSON(*res.Service))
}

func (s *Server) listServices(rq *request) {
	if rq.invalid() {
		return
	}
	var out []wire.Service
	if !rq.read(func(rd fsm.Reader) error {
		list := rd.ListServices()
		out = make([]wire.Service, 0, len(list))
		for _, svc := range list {
			out = append(out, toServiceJSON(svc))
		}
		return nil
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]any{"services": out})
}

func (s *Server) getService(rq *request) {
	if rq.invalid() {
		return
	}
	var out wire.Service
	if !rq.read(func(rd fsm.Reader) error {
		svc, err := rd.GetService(rq.service)
		out = toServiceJSON(svc)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, out)
}

func (s *Server) deleteService(rq *request) {
	if rq.invalid() {
		return
	}
	if _, ok := rq.apply(fsm.Command{Op: fsm.OpDeleteService, Service: rq.service}); !ok {
		return
	}
	rq.writeNoContent()
}

// ---- nodes ----

func (s *Server) addNode(rq *request) {
	f := rq.fields
	url := f.String("node", true, checkNodeURL)
	capacity := f.Int64("capacity", true, 0)
	available := f.Int64("available", false, 0)
	load := f.Int64("current_load", false, 0)
	downed := f.Bool("downed")
	backoff := f.Bool("backoff")
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpAddNode, Service: rq.service, NodeURL: url.V,
		Capacity: capacity, Available: available, CurrentLoad: load, Downed: downed, Backoff: backoff})
	if !ok {
		return
	}
	if res.Node == nil {
		rq.internalError("add node succeeded without a node")
		return
	}
	rq.writeJSON(http.StatusCreated, toNodeJSON(*res.Node))
}

func (s *Server) listNodes(rq *request) {
	// ?node=URL looks a node up by its URL, as the token server's admin
	// scripts address nodes: the list then holds that node or nothing.
	byURL, filtered := rq.query["node"]
	if filtered {
		if desc := checkNodeURL(byURL); desc != "" {
			rq.queryError("node", desc)
		}
	}
	if rq.invalid() {
		return
	}
	var out []wire.Node
	if !rq.read(func(rd fsm.Reader) error {
		nodes, err := rd.ListNodes(rq.service)
		if err != nil {
			return err
		}
		out = make([]wire.Node, 0, len(nodes))
		for _, n := range nodes {
			if filtered && n.URL != byURL {
				continue
			}
			out = append(out, toNodeJSON(n))
		}
		return nil
	}) {
		return
	}
	// The contract promises id order; do not depend on the reader's.
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	rq.writeJSON(http.StatusOK, map[string]any{"nodes": out})
}

func (s *Server) getNode(rq *request) {
	if rq.invalid() {
		return
	}
	var out wire.Node
	if !rq.read(func(rd fsm.Reader) error {
		n, err := rd.GetNode(rq.service, rq.nodeID)
		out = toNodeJSON(n)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, out)
}

func (s *Server) updateNode(rq *request) {
	f := rq.fields
	capacity := f.Int64("capacity", false, 0)
	available := f.Int64("available", false, 0)
	load := f.Int64("current_load", false, 0)
	downed := f.Bool("downed")
	backoff := f.Bool("backoff")
	f.requireOneOf("capacity", "available", "current_load", "downed", "backoff")
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpUpdateNode, Service: rq.service, NodeID: rq.nodeID,
		Capacity: capacity, Available: available, CurrentLoad: load, Downed: downed, Backoff: backoff})
	if !ok {
		return
	}
	if res.Node == nil {
		rq.internalError("update node succeeded without a node")
		return
	}
	rq.writeJSON(http.StatusOK, toNodeJSON(*res.Node))
}

func (s *Server) unassignNode(rq *request) { s.nodeCountCommand(rq, fsm.OpUnassignNode) }
func (s *Server) removeNode(rq *request)   { s.nodeCountCommand(rq, fsm.OpRemoveNode) }

func (s *Server) nodeCountCommand(rq *request, op fsm.Op) {
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: op, Service: rq.service, NodeID: rq.nodeID})
	if !ok {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]int64{"unassigned": res.Count})
}

// ---- users ----

func (s *Server) allocate(rq *request) {
	f := rq.fields
	email := f.String("email", true, checkEmail)
	generation := f.Int64("generation", false, 0)
	clientState := f.String("client_state", false, checkClientState)
	kca := f.Int64("keys_changed_at", false, 0)
	node := f.String("node", false, checkNodeURL)
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpAllocate, Service: rq.service, Email: email.V,
		Generation: generation, ClientState: clientState, KeysChangedAt: kca, Node: node})
	if !ok {
		return
	}
	code := http.StatusOK
	if res.Created {
		code = http.StatusCreated
	}
	rq.writeUser(code, res)
}

func (s *Server) getUser(rq *request) {
	if rq.invalid() {
		return
	}
	var out wire.User
	if !rq.read(func(rd fsm.Reader) error {
		u, err := rd.GetUser(rq.service, rq.email)
		out = toUserJSON(u)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, out)
}

func (s *Server) updateUser(rq *request) {
	f := rq.fields
	generation := f.Int64("generation", false, 0)
	kca := f.Int64("keys_changed_at", false, 0)
	clientState := f.String("client_state", false, checkClientState)
	node := f.String("node", false, checkNodeURL)
	f.requireOneOf("generation", "keys_changed_at", "client_state", "node")
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpUpdateUser, Service: rq.service, Email: rq.email,
		Generation: generation, KeysChangedAt: kca, ClientState: clientState, Node: node})
	if !ok {
		return
	}
	rq.writeUser(http.StatusOK, res)
}

func (s *Server) login(rq *request) {
	f := rq.fields
	generation := f.Int64("generation", false, 0)
	kca := f.Int64("keys_changed_at", false, 0)
	clientState := f.String("client_state", true, checkClientState)
	if rq.invalid() {
		return
	}
	cmd := fsm.Command{Op: fsm.OpLogin, Service: rq.service, Email: rq.email,
		Generation: generation, KeysChangedAt: kca, ClientState: clientState}
	res, served := rq.loginFromRead(cmd)
	if !served {
		if rq.relayLogin() {
			return
		}
		var ok bool
		if res, ok = rq.apply(cmd); !ok {
			return
		}
	} else if res.Err != nil {
		rq.fsmError(res.Err)
		return
	}
	if res.User == nil {
		rq.internalError("login succeeded without a user")
		return
	}
	rq.writeJSON(http.StatusOK, wire.LoginResult{User: toUserJSON(*res.User), FxaKid: res.FxaKid})
}

func (s *Server) retire(rq *request) {
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpRetire, Service: rq.service, Email: rq.email})
	if !ok {
		return
	}
	rq.writeUser(http.StatusOK, res)
}

func (s *Server) replace(rq *request) {
	at := rq.fields.Int64("at", false, 0)
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpReplace, Service: rq.service, Email: rq.email, At: at})
	if !ok {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]int64{"replaced": res.Count})
}

func (rq *request) writeUser(code int, res fsm.Result) {
	if res.User == nil {
		rq.internalError("user command succeeded without a user")
		return
	}
	rq.writeJSON(code, toUserJSON(*res.User))
}

func (s *Server) records(rq *request) {
	if rq.invalid() {
		return
	}
	var out []wire.Record
	if !rq.read(func(rd fsm.Reader) error {
		rs, err := rd.Records(rq.service, rq.email)
		out = toRecordsJSON(rs)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]any{"records": out})
}

func (s *Server) oldRecords(rq *request) {
	grace := rq.queryInt64("grace_ms", defaultOldGraceMs, 0, maxInt64)
	limit := rq.queryInt64("limit", defaultOldLimit, 1, maxOldLimit)
	offset := rq.queryInt64("offset", 0, 0, maxInt64)
	if rq.invalid() {
		return
	}
	now := rq.s.now().UnixMilli()
	q := fsm.OldRecordsQuery{Service: rq.service, Now: now, GraceMs: grace, Limit: int(limit), Offset: int(offset)}
	if grace == 0 {
		// The reader takes GraceMs 0 to mean its 7-day default, but
		// grace_ms=0 asks for every record replaced before now. Only
		// Now − GraceMs matters to the reader, so shift both by 1 ms.
		q.Now, q.GraceMs = now+1, 1
	}
	var out []wire.Record
	if !rq.read(func(rd fsm.Reader) error {
		rs, err := rd.OldRecords(q)
		out = toRecordsJSON(rs)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]any{"records": out})
}

func (s *Server) deleteRecord(rq *request) {
	if rq.invalid() {
		return
	}
	if _, ok := rq.apply(fsm.Command{Op: fsm.OpDeleteRecord, Service: rq.service, UID: rq.uid}); !ok {
		return
	}
	rq.writeNoContent()
}

func (s *Server) stats(rq *request) {
	if rq.invalid() {
		return
	}
	var st fsm.Stats
	if !rq.read(func(rd fsm.Reader) error {
		var err error
		st, err = rd.Stats(rq.service)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]int64{"users": st.Users, "records": st.Records, "nodes": st.Nodes})
}

// countUsers is docs/spec.md §4 "count users", an addition to docs/api.md.
func (s *Server) countUsers(rq *request) {
	service, filtered := rq.query["service"]
	if filtered {
		if desc := checkServiceName(service); desc != "" {
			rq.queryError("service", desc)
		}
	}
	asOf := rq.queryInt64("as_of", rq.s.now().UnixMilli(), 0, maxInt64)
	if rq.invalid() {
		return
	}
	var n int64
	if !rq.read(func(rd fsm.Reader) error {
		var err error
		n, err = rd.CountUsers(service, asOf)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]int64{"count": n, "as_of": asOf})
}

// accountEvents are the events of POST /v1/events.
var accountEvents = map[string]bool{"delete": true, "reset": true, "passwordChange": true}

func (s *Server) event(rq *request) {
	f := rq.fields
	event := f.String("event", true, func(v string) string {
		if !accountEvents[v] {
			return "must be one of delete, reset, passwordChange"
		}
		return ""
	})
	email := f.String("email", true, checkEmail)
	generation := f.Int64("generation", false, 0)
	if rq.invalid() {
		return
	}
	res, ok := rq.apply(fsm.Command{Op: fsm.OpAccountEvent, Event: event.V, Email: email.V, Generation: generation})
	if !ok {
		return
	}
	rq.writeJSON(http.StatusOK, map[string]int64{"applied": res.Count})
}

// ---- cluster ----

func (s *Server) clusterStatus(rq *request) {
	if rq.invalid() {
		return
	}
	var st wire.ClusterStatus
	if s.cluster == nil {
		st = s.selfStatus()
	} else {
		var err error
		st, err = s.cluster.Status(rq.r.Context())
		if err != nil {
			rq.storeError(err)
			return
		}
	}
	if st.Members == nil {
		st.Members = []wire.Member{}
	}
	rq.writeJSON(http.StatusOK, st)
}

// selfStatus describes a member running without cluster management (tests,
// tools): only what Store.Meta knows, which has no term.
func (s *Server) selfStatus() wire.ClusterStatus {
	m := s.store.Meta()
	self := wire.Member{ID: m.MemberID, Voter: true, State: "follower", LastContactMs: m.LastContactMs}
	st := wire.ClusterStatus{CommitIndex: m.Index, AppliedIndex: m.Index}
	if m.KnownLeader && m.LastContactMs == 0 {
		self.State = "leader"
		leader := self
		st.Leader = &leader
	}
	st.Members = []wire.Member{self}
	return st
}

func (s *Server) clusterJoin(rq *request) {
	f := rq.fields
	id := f.String("id", true, checkMemberID)
	raftAddr := f.String("raft_addr", true, checkHostPort)
	httpAddr := f.String("http_addr", true, checkHostPort)
	gossipAddr := f.String("gossip_addr", false, checkHostPort)
	zone := f.String("zone", false, checkZone)
	voter := f.Bool("voter")
	if rq.invalid() || !rq.needCluster() {
		return
	}
	m := wire.Member{ID: id.V, RaftAddr: raftAddr.V, HTTPAddr: httpAddr.V, GossipAddr: gossipAddr.V,
		Zone: zone.V, Voter: !voter.Set || voter.V}
	if err := s.cluster.Join(rq.r.Context(), m); err != nil {
		rq.storeError(err)
		return
	}
	// The answer echoes the member as it was added.
	rq.writeJSON(http.StatusOK, wire.JoinRequest{ID: m.ID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr,
		GossipAddr: m.GossipAddr, Zone: m.Zone, Voter: &m.Voter})
}

func (s *Server) clusterRemove(rq *request) {
	if rq.invalid() || !rq.needCluster() {
		return
	}
	if err := s.cluster.Remove(rq.r.Context(), rq.member); err != nil {
		rq.storeError(err)
		return
	}
	rq.writeJSON(http.StatusOK, map[string]string{"removed": rq.member})
}

func (s *Server) clusterLeader(rq *request) {
	target := rq.fields.String("id", false, checkMemberID)
	if rq.invalid() || !rq.needCluster() {
		return
	}
	if err := s.cluster.TransferLeadership(rq.r.Context(), target.V); err != nil {
		rq.storeError(err)
		return
	}
	var to *string
	if target.Set {
		to = &target.V
	}
	rq.writeJSON(http.StatusOK, map[string]*string{"target": to})
}

func (rq *request) needCluster() bool {
	if rq.s.cluster != nil {
		return true
	}
	rq.writeError(http.StatusServiceUnavailable, StatusNoCluster,
		ErrorDetail{Location: LocationPath, Name: "path", Description: "cluster management is not configured on this member"})
	return false
}

// ---- health and metrics (open) ----

func (s *Server) healthz(rq *request) {
	rq.writeJSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(rq *request) {
	if !s.store.Ready() {
		rq.writeError(http.StatusServiceUnavailable, StatusNotReady, ErrorDetail{Location: LocationPath, Name: "readyz",
			Description: "this member does not know a leader or has not applied the log it had at start"})
		return
	}
	rq.writeJSON(http.StatusOK, map[string]bool{"ready": true})
}

func (s *Server) serveMetrics(rq *request) {
	rq.setMetaHeaders()
	s.metricsHandler.ServeHTTP(rq.w, rq.r)
}

// promErrorLog routes promhttp's collection errors to hclog.
type promErrorLog struct {
	log interface{ Error(string, ...any) }
}

func (p promErrorLog) Println(v ...any) { p.log.Error("metrics collection failed", "error", v) }
