package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// countingRouter counts the requests this member relays to the leader, by
// route template and the status code answered: a steady stream means
// clients talk to followers (fine, but it costs a hop).
type countingRouter struct {
	next      Router
	forwarded *prometheus.CounterVec
}

func newCountingRouter(next Router, reg *prometheus.Registry) (*countingRouter, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wimms_http_forwarded_requests_total",
		Help: "Requests this member relayed to the leader, by route template and the status code answered.",
	}, []string{"route", "code"})
	c, err := registerOrReuse(reg, c)
	if err != nil {
		return nil, err
	}
	return &countingRouter{next: next, forwarded: c}, nil
}

// route is next's Route, counting a relayed request under the route
// template label. The recorder comes from a pool: most requests are served
// here, and the Router keeps no writer past its call.
func (f *countingRouter) route(w http.ResponseWriter, r *http.Request, body []byte, p Placement, label string) bool {
	rec := recorderPool.Get().(*statusRecorder)
	*rec = statusRecorder{ResponseWriter: w}
	defer func() {
		*rec = statusRecorder{}
		recorderPool.Put(rec)
	}()
	if !f.next.Route(rec, r, body, p.Where, p.Relay) {
		return false
	}
	code := rec.code
	if !rec.wroteHeader {
		code = http.StatusOK
	}
	f.forwarded.WithLabelValues(label, strconv.Itoa(code)).Inc()
	return true
}
