package httpapi

import "net/http"

// Route names: mux route names and the "route" of log lines.
const (
	routePutService    = "put-service"
	routeListServices  = "list-services"
	routeGetService    = "get-service"
	routeDeleteService = "delete-service"
	routeAddNode       = "add-node"
	routeListNodes     = "list-nodes"
	routeGetNode       = "get-node"
	routeUpdateNode    = "update-node"
	routeUnassignNode  = "unassign-node"
	routeRemoveNode    = "remove-node"
	routeAllocate      = "allocate"
	routeGetUser       = "get-user"
	routeUpdateUser    = "update-user"
	routeLogin         = "login"
	routeRetire        = "retire"
	routeReplace       = "replace"
	routeRecords       = "records"
	routeOldRecords    = "old-records"
	routeDeleteRecord  = "delete-record"
	routeStats         = "stats"
	routeCountUsers    = "count-users"
	routeEvent         = "event"
	routeClusterStatus = "cluster-status"
	routeClusterJoin   = "cluster-join"
	routeClusterRemove = "cluster-remove"
	routeClusterLeader = "cluster-leader"
	routeHealthz       = "healthz"
	routeReadyz        = "readyz"
	routeMetrics       = "metrics"
)

// Path templates shared by several routes.
const (
	pathService        = "/v1/services/{service}"
	pathNodes          = "/v1/services/{service}/nodes"
	pathNode           = "/v1/services/{service}/nodes/{id}"
	pathUsers          = "/v1/services/{service}/users"
	pathUser           = "/v1/services/{service}/users/{email}"
	pathServiceRecords = "/v1/services/{service}/records"
	pathClusterMembers = "/v1/cluster/members"
)

// Path variables an fsm error without a Field is reported against.
const (
	subjectService       = "service"
	subjectNode          = "id"
	subjectUser          = "email"
	subjectRecord        = "uid"
	subjectClusterMember = "id"
)

// Defaults and bounds of GET .../records/old (docs/spec.md §4 "old records").
const (
	defaultOldGraceMs = 7 * 24 * 60 * 60 * 1000
	defaultOldLimit   = 100
	maxOldLimit       = 1000
	maxInt64          = int64(^uint64(0) >> 1)
)

// routes is the whole API (docs/api.md) plus this server's additions
// (GET /v1/users/count). Order matters only where templates overlap:
// /records/old is listed before /records/{uid}. Each route declares here,
// once, where it runs (place, see routing.go); nothing else decides it.
func (s *Server) routes() []route {
	return []route{
		{name: routeListServices, method: http.MethodGet, path: "/v1/services", access: accessAPI, kind: kindRead, place: placeRead, handle: s.listServices},
		{name: routePutService, method: http.MethodPut, path: pathService, access: accessAdmin, kind: kindWrite, place: placeWrite, handle: s.putService, subject: subjectService},
		{name: routeGetService, method: http.MethodGet, path: pathService, access: accessAPI, kind: kindRead, place: placeRead, handle: s.getService, subject: subjectService},
		{name: routeDeleteService, method: http.MethodDelete, path: pathService, access: accessAdmin, kind: kindWrite, place: placeWrite, handle: s.deleteService, subject: subjectService},

		{name: routeAddNode, method: http.MethodPost, path: pathNodes, access: accessAdmin, kind: kindWrite, place: placeWrite, handle: s.addNode, subject: subjectService},
		{name: routeListNodes, method: http.MethodGet, path: pathNodes, access: accessAPI, kind: kindRead, place: placeRead, handle: s.listNodes, subject: subjectService,
			query: []string{"node"}},
		{name: routeGetNode, method: http.MethodGet, path: pathNode, access: accessAPI, kind: kindRead, place: placeRead, handle: s.getNode, subject: subjectNode},
		{name: routeUpdateNode, method: http.MethodPatch, path: pathNode, access: accessAdmin, kind: kindWrite, place: placeWrite, handle: s.updateNode, subject: subjectNode},
		{name: routeUnassignNode, method: http.MethodPost, path: pathNode + "/unassign", access: accessAdmin, kind: kindWrite, place: placeWrite, handle: s.unassignNode, subject: subjectNode},
		{name: routeRemoveNode, method: http.MethodDelete, path: pathNode, access: accessAdmin, kind: kindWrite, place: placeWrite, handle: s.removeNode, subject: subjectNode},

		{name: routeAllocate, method: http.MethodPost, path: pathUsers, access: accessAPI, kind: kindWrite, place: placeWrite, handle: s.allocate, subject: subjectService},
		{name: routeGetUser, method: http.MethodGet, path: pathUser, access: accessAPI, kind: kindRead, place: placeRead, handle: s.getUser, subject: subjectUser},
		{name: routeUpdateUser, method: http.MethodPatch, path: pathUser, access: accessAPI, kind: kindWrite, place: placeWrite, handle: s.updateUser, subject: subjectUser},
		{name: routeLogin, method: http.MethodPost, path: pathUser + "/login", access: accessAPI, kind: kindWrite, place: placeLogin, handle: s.login, subject: subjectUser},
		{name: routeRetire, method: http.MethodPost, path: pathUser + "/retire", access: accessAPI, kind: kindWrite, place: placeWrite, handle: s.retire, subject: subjectUser},
		{name: routeReplace, method: http.MethodPost, path: pathUser + "/replace", access: accessAPI, kind: kindWrite, place: placeWrite, handle: s.replace, subject: subjectUser},
		{name: routeRecords, method: http.MethodGet, path: pathUser + "/records", access: accessAPI, kind: kindRead, place: placeRead, handle: s.records, subject: subjectUser},
		{name: routeOldRecords, method: http.MethodGet, path: pathServiceRecords + "/old", access: accessAPI, kind: kindRead, place: placeRead, handle: s.oldRecords, subject: subjectService,
			query: []string{"grace_ms", "limit", "offset"}},
		{name: routeDeleteRecord, method: http.MethodDelete, path: pathServiceRecords + "/{uid}", access: accessAPI, kind: kindWrite, place: placeWrite, handle: s.deleteRecord, subject: subjectRecord},
		{name: routeStats, method: http.MethodGet, path: pathService + "/stats", access: accessAPI, kind: kindRead, place: placeRead, handle: s.stats, subject: subjectService},
		{name: routeCountUsers, method: http.MethodGet, path: "/v1/users/count", access: accessAPI, kind: kindRead, place: placeRead, handle: s.countUsers, subject: subjectService,
			query: []string{"service", "as_of"}},
		{name: routeEvent, method: http.MethodPost, path: "/v1/events", access: accessAdmin, kind: kindWrite, place: placeWrite, handle: s.event, subject: subjectUser},

		{name: routeClusterStatus, method: http.MethodGet, path: "/v1/cluster", access: accessAPI, kind: kindRead, place: placeHere, handle: s.clusterStatus},
		{name: routeClusterJoin, method: http.MethodPost, path: pathClusterMembers, access: accessAdmin, kind: kindControl, place: placeJoin, handle: s.clusterJoin, subject: subjectClusterMember},
		{name: routeClusterRemove, method: http.MethodDelete, path: pathClusterMembers + "/{member}", access: accessAdmin, kind: kindControl, place: placeWrite, handle: s.clusterRemove, subject: subjectClusterMember},
		{name: routeClusterLeader, method: http.MethodPost, path: "/v1/cluster/leader", access: accessAdmin, kind: kindControl, place: placeWrite, handle: s.clusterLeader, subject: subjectClusterMember},

		{name: routeHealthz, method: http.MethodGet, path: "/healthz", access: accessOpen, kind: kindRaw, place: placeNone, handle: s.healthz},
		{name: routeReadyz, method: http.MethodGet, path: "/readyz", access: accessOpen, kind: kindRaw, place: placeNone, handle: s.readyz},
		{name: routeMetrics, method: http.MethodGet, path: "/metrics", access: accessOpen, kind: kindRaw, place: placeNone, handle: s.serveMetrics},
	}
}
