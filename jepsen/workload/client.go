package workload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/jepsen/history"
)

// Clients hands out the harness's clients of the members: deliberately
// plain, one connection per request (no keep-alive), so that "could not
// connect" is distinguishable from "sent, then lost", no automatic retries
// of any kind, and every call bounded by timeout. With tlsCfg (a --tls run)
// they talk HTTPS verified with it.
type Clients struct {
	transport http.RoundTripper
	timeout   time.Duration
	scheme    string
}

func NewClients(timeout time.Duration, tlsCfg *tls.Config) *Clients {
	t := client.NewTransport(client.TransportOptions{NoKeepAlive: true, DialTimeout: timeout, ResponseHeaderTimeout: timeout, TLS: tlsCfg})
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
	}
	return &Clients{transport: t, timeout: timeout, scheme: scheme}
}

// Of is the client of the member at httpAddr.
func (a *Clients) Of(httpAddr string) *client.Client {
	return client.New(a.scheme+httpAddr, client.WithTransport(a.transport), client.WithTimeout(a.timeout))
}

// Describe is how a call's result shows in the history: the HTTP code and
// the API's status, or the transport error.
func Describe(meta client.Meta, err error) string {
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Status != "":
		return fmt.Sprintf("%d %s", ae.HTTPStatus, ae.Status)
	case errors.As(err, &ae):
		return fmt.Sprint(ae.HTTPStatus)
	case err != nil:
		return err.Error()
	}
	return fmt.Sprint(meta.HTTPStatus)
}

// Statuses that are a state machine's definite answer: the command was
// applied (or the read ran) and this was its result.
var definiteStatuses = []string{
	fsm.StatusNotFound, fsm.StatusInvalidClientState, fsm.StatusInvalidGeneration,
	fsm.StatusInvalidKeysChangedAt, fsm.StatusNewUsersDisabled, fsm.StatusNoNodeAvailable,
}

// Statuses that mean a write was never proposed: the server refused it
// before it reached the log (docs/spec.md §5, docs/api.md).
var refusedStatuses = []string{
	"no-leader", "not-leader", "stale-read", "not-ready", "no-cluster",
	fsm.StatusBadRequest, fsm.StatusConflict, "unauthorized", "method-not-allowed",
}

// classify decides what a client knows after one call. Anything not known
// to be harmless is, for a write, "info": it may have happened.
func classify(write bool, err error) history.Outcome {
	var ae *client.APIError
	var te *client.TransportError
	switch {
	case err == nil:
		return history.OutcomeOK
	case errors.As(err, &ae):
		switch {
		case slices.Contains(definiteStatuses, ae.Status):
			return history.OutcomeOK
		case !write, slices.Contains(refusedStatuses, ae.Status):
			return history.OutcomeFail
		}
		return history.OutcomeInfo // 504 unknown-outcome, 500, shutting-down...
	case errors.As(err, &te) && !te.Sent:
		return history.OutcomeFail
	case write:
		return history.OutcomeInfo // sent, then lost or unreadable: it may have happened
	}
	return history.OutcomeFail
}

// userOutput is what a definite answer to a user operation says: the
// user, or the state machine's refusal.
func userOutput(user *wire.User, fxaKid string, meta client.Meta, err error) (history.UserOutput, error) {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return history.UserOutput{Status: ae.Status}, nil
	}
	if user == nil || user.UID == 0 {
		return history.UserOutput{}, errors.New("decode user: answer has no uid")
	}
	return history.UserOutput{Created: meta.Created(), User: userView(*user), FxaKid: fxaKid}, nil
}

// userView: numbers arrive as int64 (never through float64: a retired
// generation is 2^63-1); null keys_changed_at is fsm.Null.
func userView(u wire.User) history.UserView {
	v := history.UserView{UID: u.UID, NodeID: u.NodeID, Generation: u.Generation, KeysChangedAt: nullable(u.KeysChangedAt),
		ClientState: u.ClientState, OldClientStates: u.OldClientStates, Replaced: u.ReplacedAt != nil}
	if len(v.OldClientStates) == 0 {
		v.OldClientStates = nil
	}
	return v
}

// RecordViewOf is a stored record as the history and checker see it.
func RecordViewOf(a wire.Record) history.RecordView {
	return history.RecordView{UID: a.UID, NodeID: a.NodeID, Generation: a.Generation, KeysChangedAt: nullable(a.KeysChangedAt),
		ClientState: a.ClientState, CreatedAt: a.CreatedAt, ReplacedAt: nullable(a.ReplacedAt)}
}

// NodeViewOf is a node as the history and checker see it.
func NodeViewOf(n wire.Node) history.NodeView {
	return history.NodeView{ID: n.ID, URL: n.Node, Capacity: n.Capacity, Available: n.Available,
		CurrentLoad: n.CurrentLoad, Downed: n.Downed, Backoff: n.Backoff}
}

func nullable(v *int64) int64 {
	if v == nil {
		return fsm.Null
	}
	return *v
}

// optional turns a planned value into an optional request field.
func optional[T any](set bool, v T) *T {
	if !set {
		return nil
	}
	return &v
}
