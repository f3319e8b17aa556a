package jepsen

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
)

func TestClassify(t *testing.T) {
	lost := errors.New("connection reset")
	cases := []struct {
		name  string
		write bool
		res   response
		want  Outcome
	}{
		{"write never connected", true, response{err: lost}, OutcomeFail},
		{"write lost after connecting", true, response{sent: true, err: lost}, OutcomeInfo},
		{"read lost after connecting", false, response{sent: true, err: lost}, OutcomeFail},
		{"write 201", true, response{sent: true, code: 201}, OutcomeOK},
		{"write 404 not-found is a result", true, response{sent: true, code: 404, errStatus: fsm.StatusNotFound}, OutcomeOK},
		{"login 401 is a result", true, response{sent: true, code: 401, errStatus: fsm.StatusInvalidGeneration}, OutcomeOK},
		{"allocate 503 no-node-available is a result", true, response{sent: true, code: 503, errStatus: fsm.StatusNoNodeAvailable}, OutcomeOK},
		{"write 503 no-leader never reached the log", true, response{sent: true, code: 503, errStatus: "no-leader"}, OutcomeFail},
		{"write 503 not-leader never reached the log", true, response{sent: true, code: 503, errStatus: "not-leader"}, OutcomeFail},
		{"write 400 bad-request changes nothing", true, response{sent: true, code: 400, errStatus: fsm.StatusBadRequest}, OutcomeFail},
		{"write 504 unknown-outcome", true, response{sent: true, code: 504, errStatus: "unknown-outcome"}, OutcomeInfo},
		{"write 503 shutting-down may have been proposed", true, response{sent: true, code: 503, errStatus: "shutting-down"}, OutcomeInfo},
		{"write 500 without a body", true, response{sent: true, code: 500}, OutcomeInfo},
		{"read 503 stale-read", false, response{sent: true, code: 503, errStatus: "stale-read"}, OutcomeFail},
		{"read 504", false, response{sent: true, code: 504, errStatus: "timeout"}, OutcomeFail},
	}
	for _, c := range cases {
		if got := classify(c.write, c.res); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestAPIClientOutcomes(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-release })
	mux.HandleFunc("/user", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"uid": 42, "node_id": 3, "generation": 9223372036854775807, "keys_changed_at": null,
			"client_state": "aa", "old_client_states": [], "fxa_kid": "x"}`))
	})
	mux.HandleFunc("/noleader", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status": "no-leader", "errors": []}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	c := newAPIClient(300*time.Millisecond, nil)
	ctx := context.Background()

	if got := classify(true, c.do(ctx, http.MethodPost, srv.URL+"/slow", map[string]int{"a": 1})); got != OutcomeInfo {
		t.Errorf("timed-out write: %s, want info", got)
	}
	res := c.do(ctx, http.MethodPost, srv.URL+"/user", nil)
	if classify(true, res) != OutcomeOK {
		t.Fatalf("201: %v", res)
	}
	out, err := userOutput(res)
	if err != nil {
		t.Fatal(err)
	}
	want := UserView{UID: 42, NodeID: 3, Generation: fsm.MaxGeneration, KeysChangedAt: fsm.Null, ClientState: "aa"}
	if !out.Created || out.User.UID != want.UID || out.User.Generation != want.Generation ||
		out.User.KeysChangedAt != fsm.Null || out.User.OldClientStates != nil {
		t.Errorf("decoded %+v, want %+v (generation must survive as int64)", out, want)
	}
	if res := c.do(ctx, http.MethodPost, srv.URL+"/noleader", nil); classify(true, res) != OutcomeFail || res.errStatus != "no-leader" {
		t.Errorf("no-leader: %v classified %s", res, classify(true, res))
	}

	// A port nobody listens on: the request was never sent.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if res := c.do(ctx, http.MethodPost, "http://"+addr+"/x", nil); res.sent || classify(true, res) != OutcomeFail {
		t.Errorf("refused connection: sent=%v classified %s, want fail", res.sent, classify(true, res))
	}
}
