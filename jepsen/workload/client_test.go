package workload

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/jepsen/history"
)

func TestClassify(t *testing.T) {
	lost := errors.New("connection reset")
	cases := []struct {
		name  string
		write bool
		err   error
		want  history.Outcome
	}{
		{"write never connected", true, &client.TransportError{Err: lost}, history.OutcomeFail},
		{"write lost after connecting", true, &client.TransportError{Sent: true, Err: lost}, history.OutcomeInfo},
		{"read lost after connecting", false, &client.TransportError{Sent: true, Err: lost}, history.OutcomeFail},
		{"write 201", true, nil, history.OutcomeOK},
		{"write 404 not-found is a result", true, &client.APIError{HTTPStatus: 404, Status: fsm.StatusNotFound}, history.OutcomeOK},
		{"login 401 is a result", true, &client.APIError{HTTPStatus: 401, Status: fsm.StatusInvalidGeneration}, history.OutcomeOK},
		{"allocate 503 no-node-available is a result", true, &client.APIError{HTTPStatus: 503, Status: fsm.StatusNoNodeAvailable}, history.OutcomeOK},
		{"write 503 no-leader never reached the log", true, &client.APIError{HTTPStatus: 503, Status: "no-leader"}, history.OutcomeFail},
		{"write 503 not-leader never reached the log", true, &client.APIError{HTTPStatus: 503, Status: "not-leader"}, history.OutcomeFail},
		{"write 400 bad-request changes nothing", true, &client.APIError{HTTPStatus: 400, Status: fsm.StatusBadRequest}, history.OutcomeFail},
		{"write 504 unknown-outcome", true, &client.APIError{HTTPStatus: 504, Status: "unknown-outcome"}, history.OutcomeInfo},
		{"write 503 shutting-down may have been proposed", true, &client.APIError{HTTPStatus: 503, Status: "shutting-down"}, history.OutcomeInfo},
		{"write 500 without a body", true, &client.APIError{HTTPStatus: 500}, history.OutcomeInfo},
		{"read 503 stale-read", false, &client.APIError{HTTPStatus: 503, Status: "stale-read"}, history.OutcomeFail},
		{"read 504", false, &client.APIError{HTTPStatus: 504, Status: "timeout"}, history.OutcomeFail},
	}
	for _, c := range cases {
		if got := classify(c.write, c.err); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestAPIClientOutcomes(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/services/slow/users", func(w http.ResponseWriter, r *http.Request) { <-release })
	mux.HandleFunc("/v1/services/user/users", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"uid": 42, "node_id": 3, "generation": 9223372036854775807, "keys_changed_at": null,
			"client_state": "aa", "old_client_states": [], "fxa_kid": "x"}`))
	})
	mux.HandleFunc("/v1/services/noleader/users", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status": "no-leader", "errors": []}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	clients := NewClients(300*time.Millisecond, nil)
	c := clients.Of(srv.Listener.Addr().String())
	ctx := context.Background()

	if _, _, err := c.Allocate(ctx, "slow", wire.AllocateRequest{Email: "a@b.c"}); classify(true, err) != history.OutcomeInfo {
		t.Errorf("timed-out write: %v classified %s, want info", err, classify(true, err))
	}
	user, meta, err := c.Allocate(ctx, "user", wire.AllocateRequest{Email: "a@b.c"})
	if classify(true, err) != history.OutcomeOK {
		t.Fatalf("201: %v", err)
	}
	out, err := userOutput(user, "", meta, err)
	if err != nil {
		t.Fatal(err)
	}
	want := history.UserView{UID: 42, NodeID: 3, Generation: fsm.MaxGeneration, KeysChangedAt: fsm.Null, ClientState: "aa"}
	if !out.Created || out.User.UID != want.UID || out.User.Generation != want.Generation ||
		out.User.KeysChangedAt != fsm.Null || out.User.OldClientStates != nil {
		t.Errorf("decoded %+v, want %+v (generation must survive as int64)", out, want)
	}
	if _, meta, err := c.Allocate(ctx, "noleader", wire.AllocateRequest{Email: "a@b.c"}); classify(true, err) != history.OutcomeFail ||
		!client.IsStatus(err, "no-leader") {
		t.Errorf("no-leader: %s classified %s", Describe(meta, err), classify(true, err))
	}

	// A port nobody listens on: the request was never sent.
	addr := testutil.FreeAddr(t, "127.0.0.1")
	_, _, err = clients.Of(addr).Allocate(ctx, "x", wire.AllocateRequest{Email: "a@b.c"})
	var te *client.TransportError
	if !errors.As(err, &te) || te.Sent || classify(true, err) != history.OutcomeFail {
		t.Errorf("refused connection: %v classified %s, want fail, never sent", err, classify(true, err))
	}
}
