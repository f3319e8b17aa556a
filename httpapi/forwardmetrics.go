package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// countingForwarder counts the requests this member relays to the leader,
// by route template and the leader's status code: a steady stream means
// clients talk to followers (fine, but it costs a hop).
type countingForwarder struct {
	next      Forwarder
	forwarded *prometheus.CounterVec
}

func newCountingForwarder(next Forwarder, reg *prometheus.Registry) (Forwarder, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wimms_http_forwarded_requests_total",
		Help: "Requests this member relayed to the leader, by route template and the status code answered.",
	}, []string{"route", "code"})
	c, err := registerOrReuse(reg, c)
	if err != nil {
		return nil, err
	}
	return &countingForwarder{next: next, forwarded: c}, nil
}

func (f *countingForwarder) Forward(w http.ResponseWriter, r *http.Request, body []byte) {
	rec := &statusRecorder{ResponseWriter: w}
	f.next.Forward(rec, r, body)
	code := rec.code
	if !rec.wroteHeader {
		code = http.StatusOK
	}
	f.forwarded.WithLabelValues(routeLabel(r), strconv.Itoa(code)).Inc()
}
