package httpapi

import (
	"net/http"
	"sort"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// Most handlers read their fields, then either run one read or propose one
// command; these helpers hold that sequence so each handler says only what
// it reads, proposes and answers.

// readJSON answers a read route: unless the request is invalid, answer
// builds the reply inside one read at the requested level, and it is
// written as 200. On failure the error answer is written instead.
func readJSON[T any](rq *request, answer func(fsm.Reader) (T, error)) {
	if rq.invalid() {
		return
	}
	var out T
	if !rq.read(func(rd fsm.Reader) error {
		var err error
		out, err = answer(rd)
		return err
	}) {
		return
	}
	rq.writeJSON(http.StatusOK, out)
}

// applyValid proposes cmd unless the request is invalid. On failure it has
// answered already and returns false.
func (rq *request) applyValid(cmd fsm.Command) (fsm.Result, bool) {
	if rq.invalid() {
		return fsm.Result{}, false
	}
	return rq.apply(cmd)
}

// applyCount proposes a command that counts what it changed and answers
// {key: count}.
func (rq *request) applyCount(cmd fsm.Command, key string) {
	if res, ok := rq.applyValid(cmd); ok {
		rq.writeJSON(http.StatusOK, map[string]int64{key: res.Count})
	}
}

// applyNoContent proposes a command whose success has no body (a delete).
func (rq *request) applyNoContent(cmd fsm.Command) {
	if _, ok := rq.applyValid(cmd); ok {
		rq.writeNoContent()
	}
}

// createdStatus is 201 when the command created its object, else 200.
func createdStatus(res fsm.Result) int {
	if res.Created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// ---- services ----

func (s *Server) putService(rq *request) {
	f := rq.fields
	pattern := f.String("pattern", true, checkPattern)
	rate := f.ReleaseRate("release_rate")
	allow := f.Bool("allow_new_users")
	spread := f.Int64("spread", false, 1)
	res, ok := rq.applyValid(fsm.Command{Op: fsm.OpPutService, Service: rq.service,
		Pattern: pattern, ReleaseRate: rate, AllowNewUsers: allow, Spread: spread})
	if !ok {
		return
	}
	if res.Service == nil {
		rq.internalError("put service succeeded without a service")
		return
	}
	rq.writeJSON(createdStatus(res), toServiceJSON(*res.Service))
}

func (s *Server) listServices(rq *request) {
	readJSON(rq, func(rd fsm.Reader) (map[string][]wire.Service, error) {
		list := rd.ListServices()
		out := make([]wire.Service, 0, len(list))
		for _, svc := range list {
			out = append(out, toServiceJSON(svc))
		}
		return map[string][]wire.Service{"services": out}, nil
	})
}

func (s *Server) getService(rq *request) {
	readJSON(rq, func(rd fsm.Reader) (wire.Service, error) {
		svc, err := rd.GetService(rq.service)
		return toServiceJSON(svc), err
	})
}

func (s *Server) deleteService(rq *request) {
	rq.applyNoContent(fsm.Command{Op: fsm.OpDeleteService, Service: rq.service})
}

// ---- nodes ----

func (s *Server) addNode(rq *request) {
	url := rq.fields.String("node", true, checkNodeURL)
	cmd := rq.fields.nodeFields(fsm.Command{Op: fsm.OpAddNode, Service: rq.service, NodeURL: url.V}, true)
	if res, ok := rq.applyValid(cmd); ok {
		rq.writeNode(http.StatusCreated, res, "add node succeeded without a node")
	}
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
	readJSON(rq, func(rd fsm.Reader) (map[string][]wire.Node, error) {
		nodes, err := rd.ListNodes(rq.service)
		if err != nil {
			return nil, err
		}
		out := make([]wire.Node, 0, len(nodes))
		for _, n := range nodes {
			if filtered && n.URL != byURL {
				continue
			}
			out = append(out, toNodeJSON(n))
		}
		// The contract promises id order; do not depend on the reader's.
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return map[string][]wire.Node{"nodes": out}, nil
	})
}

func (s *Server) getNode(rq *request) {
	readJSON(rq, func(rd fsm.Reader) (wire.Node, error) {
		n, err := rd.GetNode(rq.service, rq.nodeID)
		return toNodeJSON(n), err
	})
}

func (s *Server) updateNode(rq *request) {
	cmd := rq.fields.nodeFields(fsm.Command{Op: fsm.OpUpdateNode, Service: rq.service, NodeID: rq.nodeID}, false)
	rq.fields.requireOneOf("capacity", "available", "current_load", "downed", "backoff")
	if res, ok := rq.applyValid(cmd); ok {
		rq.writeNode(http.StatusOK, res, "update node succeeded without a node")
	}
}

// nodeFields reads a node's settable fields, which adding a node and
// updating one share, into cmd; adding requires capacity.
func (f *fieldReader) nodeFields(cmd fsm.Command, capacityRequired bool) fsm.Command {
	cmd.Capacity = f.Int64("capacity", capacityRequired, 0)
	cmd.Available = f.Int64("available", false, 0)
	cmd.CurrentLoad = f.Int64("current_load", false, 0)
	cmd.Downed = f.Bool("downed")
	cmd.Backoff = f.Bool("backoff")
	return cmd
}

// writeNode answers the node a node command returned; broken names the
// broken promise to log if it returned none.
func (rq *request) writeNode(code int, res fsm.Result, broken string) {
	if res.Node == nil {
		rq.internalError(broken)
		return
	}
	rq.writeJSON(code, toNodeJSON(*res.Node))
}

// unassignNode and removeNode both answer how many users they unassigned.
func (s *Server) unassignNode(rq *request) {
	rq.applyCount(fsm.Command{Op: fsm.OpUnassignNode, Service: rq.service, NodeID: rq.nodeID}, "unassigned")
}

func (s *Server) removeNode(rq *request) {
	rq.applyCount(fsm.Command{Op: fsm.OpRemoveNode, Service: rq.service, NodeID: rq.nodeID}, "unassigned")
}

// ---- users ----

func (s *Server) allocate(rq *request) {
	f := rq.fields
	email := f.String("email", true, checkEmail)
	generation := f.Int64("generation", false, 0)
	clientState := f.String("client_state", false, checkClientState)
	kca := f.Int64("keys_changed_at", false, 0)
	node := f.String("node", false, checkNodeURL)
	res, ok := rq.applyValid(fsm.Command{Op: fsm.OpAllocate, Service: rq.service, Email: email.V,
		Generation: generation, ClientState: clientState, KeysChangedAt: kca, Node: node})
	if ok {
		rq.writeUser(createdStatus(res), res)
	}
}

// getUser renders the user inside the read (appendUserJSON), into a
// pooled buffer: the lookup is the hottest request.
func (s *Server) getUser(rq *request) {
	if rq.invalid() {
		return
	}
	buf := getAnswerBuf()
	defer putAnswerBuf(buf)
	if !rq.read(func(rd fsm.Reader) error {
		u, err := rd.GetUser(rq.service, rq.email)
		if err != nil {
			return err
		}
		buf.b = appendUserJSON(buf.b[:0], &u, false, "")
		return nil
	}) {
		return
	}
	rq.writeRendered(http.StatusOK, buf.b)
}

func (s *Server) updateUser(rq *request) {
	f := rq.fields
	generation := f.Int64("generation", false, 0)
	kca := f.Int64("keys_changed_at", false, 0)
	clientState := f.String("client_state", false, checkClientState)
	node := f.String("node", false, checkNodeURL)
	f.requireOneOf("generation", "keys_changed_at", "client_state", "node")
	res, ok := rq.applyValid(fsm.Command{Op: fsm.OpUpdateUser, Service: rq.service, Email: rq.email,
		Generation: generation, KeysChangedAt: kca, ClientState: clientState, Node: node})
	if ok {
		rq.writeUser(http.StatusOK, res)
	}
}

func (s *Server) login(rq *request) {
	f := rq.fields
	generation := f.Int64("generation", false, 0)
	kca := f.Int64("keys_changed_at", false, 0)
	clientState := f.String("client_state", true, checkClientState)
	if rq.invalid() {
		return
	}
	res, ok := rq.serveLogin(fsm.Command{Op: fsm.OpLogin, Service: rq.service, Email: rq.email,
		Generation: generation, KeysChangedAt: kca, ClientState: clientState}, rq.proposeOnLeader)
	if !ok {
		return
	}
	if res.User == nil {
		rq.internalError("login succeeded without a user")
		return
	}
	buf := getAnswerBuf()
	defer putAnswerBuf(buf)
	buf.b = appendUserJSON(buf.b, res.User, true, res.FxaKid)
	rq.writeRendered(http.StatusOK, buf.b)
}

func (s *Server) retire(rq *request) {
	if res, ok := rq.applyValid(fsm.Command{Op: fsm.OpRetire, Service: rq.service, Email: rq.email}); ok {
		rq.writeUser(http.StatusOK, res)
	}
}

func (s *Server) replace(rq *request) {
	at := rq.fields.Int64("at", false, 0)
	rq.applyCount(fsm.Command{Op: fsm.OpReplace, Service: rq.service, Email: rq.email, At: at}, "replaced")
}

func (rq *request) writeUser(code int, res fsm.Result) {
	if res.User == nil {
		rq.internalError("user command succeeded without a user")
		return
	}
	rq.writeJSON(code, toUserJSON(*res.User))
}

func (s *Server) records(rq *request) {
	readJSON(rq, func(rd fsm.Reader) (map[string][]wire.Record, error) {
		rs, err := rd.Records(rq.service, rq.email)
		return map[string][]wire.Record{"records": toRecordsJSON(rs)}, err
	})
}

func (s *Server) oldRecords(rq *request) {
	grace := rq.queryInt64("grace_ms", defaultOldGraceMs, 0, maxInt64)
	limit := rq.queryInt64("limit", defaultOldLimit, 1, maxOldLimit)
	offset := rq.queryInt64("offset", 0, 0, maxInt64)
	now := rq.s.now().UnixMilli()
	q := fsm.OldRecordsQuery{Service: rq.service, Now: now, GraceMs: grace, Limit: int(limit), Offset: int(offset)}
	if grace == 0 {
		// The reader takes GraceMs 0 to mean its 7-day default, but
		// grace_ms=0 asks for every record replaced before now. Only
		// Now − GraceMs matters to the reader, so shift both by 1 ms.
		q.Now, q.GraceMs = now+1, 1
	}
	readJSON(rq, func(rd fsm.Reader) (map[string][]wire.Record, error) {
		rs, err := rd.OldRecords(q)
		return map[string][]wire.Record{"records": toRecordsJSON(rs)}, err
	})
}

func (s *Server) deleteRecord(rq *request) {
	rq.applyNoContent(fsm.Command{Op: fsm.OpDeleteRecord, Service: rq.service, UID: rq.uid})
}

func (s *Server) stats(rq *request) {
	readJSON(rq, func(rd fsm.Reader) (map[string]int64, error) {
		st, err := rd.Stats(rq.service)
		return map[string]int64{"users": st.Users, "records": st.Records, "nodes": st.Nodes}, err
	})
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
	readJSON(rq, func(rd fsm.Reader) (map[string]int64, error) {
		n, err := rd.CountUsers(service, asOf)
		return map[string]int64{"count": n, "as_of": asOf}, err
	})
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
	rq.applyCount(fsm.Command{Op: fsm.OpAccountEvent, Event: event.V, Email: email.V, Generation: generation}, "applied")
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
		why := "this member does not know a leader or has not applied what the leader committed"
		if ex, ok := s.store.(readinessExplainer); ok {
			if _, w := ex.NotReady(); w != "" {
				why = w
			}
		}
		rq.writeError(http.StatusServiceUnavailable, StatusNotReady, ErrorDetail{Location: LocationPath, Name: "readyz", Description: why})
		return
	}
	rq.writeJSON(http.StatusOK, map[string]bool{"ready": true})
}

func (s *Server) serveMetrics(rq *request) {
	rq.setMetaHeaders()
	// The metrics name storage nodes and their loads, which the API keeps
	// behind its token; a member given a metrics token keeps them there too.
	if s.metricsToken != "" && !wire.HasBearerToken(rq.r, s.metricsToken, s.adminToken) {
		rq.w.Header().Set("WWW-Authenticate", `Bearer realm="wimms-metrics"`)
		rq.writeError(http.StatusUnauthorized, StatusUnauthorized,
			ErrorDetail{Location: LocationHeader, Name: "Authorization", Description: "missing or invalid bearer token (see --metrics-token-file)"})
		return
	}
	s.metricsHandler.ServeHTTP(rq.w, rq.r)
}

// promErrorLog routes promhttp's collection errors to hclog.
type promErrorLog struct {
	log interface{ Error(string, ...any) }
}

func (p promErrorLog) Println(v ...any) { p.log.Error("metrics collection failed", "error", v) }
