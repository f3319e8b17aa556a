package httpapi

import (
	"net/http"
	"runtime/debug"

	"github.com/wimms-dev/wimms/store"
)

// Dockerflow endpoints (github.com/mozilla-services/Dockerflow): what
// Mozilla's load balancers and deploy tooling probe on every service.
const (
	routeLBHeartbeat = "dockerflow-lbheartbeat"
	routeHeartbeat   = "dockerflow-heartbeat"
	routeVersion     = "dockerflow-version"
)

// VersionInfo is the body of /__version__. The binary's build fills it
// (-ldflags -X in the Makefile; the image copies that binary).
type VersionInfo struct {
	Source  string `json:"source"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Build   string `json:"build"`
}

// DefaultSource is the repository /__version__ names when the build did
// not say otherwise.
const DefaultSource = "https://github.com/wimms-dev/wimms"

// withDefaults fills what a plain `go run` or `go build` leaves empty: the
// commit from the Go toolchain's VCS stamp when there is one.
func (v VersionInfo) withDefaults() VersionInfo {
	if v.Source == "" {
		v.Source = DefaultSource
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					v.Commit = s.Value
				}
			}
		}
	}
	if v.Build == "" {
		v.Build = "local"
	}
	return v
}

// HeartbeatJSON is the body of /__heartbeat__: every check by name with
// "ok" or "error", and for a failing check why.
type HeartbeatJSON struct {
	Status  string            `json:"status"`
	Checks  map[string]string `json:"checks"`
	Details map[string]string `json:"details"`
}

// Heartbeat check names.
const (
	checkLeader  = store.CheckLeader
	checkCatchUp = store.CheckCaughtUp
	checkAppend  = store.CheckAppend
)

// readinessExplainer is a Store that can say which readiness check fails
// and why (*store.Store); others report only Ready.
type readinessExplainer interface {
	NotReady() (check, why string)
}

func (s *Server) lbHeartbeat(rq *request) {
	rq.writeJSON(http.StatusOK, map[string]string{"status": "ok"})
}

// heartbeat is ready-or-not with reasons: a member that knows no leader
// cannot serve writes or default reads, one that has not applied what the
// leader committed would answer from an old state, and one whose log
// appends fail (a full disk) falls further behind with every write.
func (s *Server) heartbeat(rq *request) {
	hb := HeartbeatJSON{Status: "ok", Checks: map[string]string{}, Details: map[string]string{}}
	fail := func(check, why string) {
		hb.Status = "error"
		hb.Checks[check] = "error"
		hb.Details[check] = why
	}
	meta := s.store.Meta()
	hb.Checks[checkLeader] = "ok"
	if !meta.KnownLeader {
		fail(checkLeader, "this member knows no leader")
	}
	hb.Checks[checkCatchUp] = "ok"
	if ex, ok := s.store.(readinessExplainer); ok {
		hb.Checks[checkAppend] = "ok"
		switch check, why := ex.NotReady(); check {
		case "":
		case checkLeader:
			if meta.KnownLeader { // it lost the leader since Meta
				fail(checkLeader, why)
			}
			fail(checkCatchUp, "no leader known to catch up with")
		default:
			fail(check, why)
		}
	} else if !s.store.Ready() {
		if meta.KnownLeader {
			fail(checkCatchUp, "this member has not yet applied what the leader committed")
		} else {
			fail(checkCatchUp, "this member is not ready (no leader, or what the leader committed is not applied yet)")
		}
	}
	code := http.StatusOK
	if hb.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	rq.writeJSON(code, hb)
}

func (s *Server) versionInfo(rq *request) {
	rq.writeJSON(http.StatusOK, s.version)
}

// dockerflowRoutes are open like /healthz: probes carry no token.
func (s *Server) dockerflowRoutes() []route {
	return []route{
		{name: routeLBHeartbeat, method: http.MethodGet, path: "/__lbheartbeat__", access: accessOpen, kind: kindRaw, handle: s.lbHeartbeat},
		{name: routeHeartbeat, method: http.MethodGet, path: "/__heartbeat__", access: accessOpen, kind: kindRaw, handle: s.heartbeat},
		{name: routeVersion, method: http.MethodGet, path: "/__version__", access: accessOpen, kind: kindRaw, handle: s.versionInfo},
	}
}
