package jepsen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"time"

	"github.com/wimms-dev/wimms/fsm"
)

// apiClient is a deliberately plain HTTP client: one connection per request
// (no keep-alive), so that "could not connect" is distinguishable from "sent,
// then lost", and no automatic retries of any kind.
type apiClient struct {
	hc      *http.Client
	timeout time.Duration
}

func newAPIClient(timeout time.Duration) *apiClient {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: timeout,
	}
	return &apiClient{hc: &http.Client{Transport: transport, Timeout: timeout}, timeout: timeout}
}

// response is what one request produced.
type response struct {
	// sent: a connection was made, so the server may have read the request.
	sent      bool
	err       error // transport error or timeout; then code is 0
	code      int
	body      []byte
	errStatus string // "status" of an error body
}

func (r response) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	if r.errStatus != "" {
		return fmt.Sprintf("%d %s", r.code, r.errStatus)
	}
	return fmt.Sprint(r.code)
}

// do sends one request. body is JSON-encoded when not nil.
func (c *apiClient) do(ctx context.Context, method, rawURL string, body any) response {
	var res response
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { res.sent = true },
	})
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			res.err = fmt.Errorf("encode request: %w", err)
			return res
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, reader)
	if err != nil {
		res.err = fmt.Errorf("build request: %w", err)
		return res
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	res.body, err = io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		// The status line arrived, so the server acted; the body is lost.
		res.err = fmt.Errorf("read body of %d answer: %w", resp.StatusCode, err)
		return res
	}
	res.code = resp.StatusCode
	if res.code >= 300 {
		var eb struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(res.body, &eb) == nil {
			res.errStatus = eb.Status
		}
	}
	return res
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

// classify decides what a client knows after one request. Anything not known
// to be harmless is, for a write, "info": it may have happened.
func classify(write bool, r response) Outcome {
	switch {
	case r.err != nil && !r.sent:
		return OutcomeFail
	case r.err != nil:
		if write {
			return OutcomeInfo
		}
		return OutcomeFail
	case r.code >= 200 && r.code < 300:
		return OutcomeOK
	case slices.Contains(definiteStatuses, r.errStatus):
		return OutcomeOK
	case !write:
		return OutcomeFail
	case slices.Contains(refusedStatuses, r.errStatus):
		return OutcomeFail
	}
	return OutcomeInfo // 504 unknown-outcome, 500, shutting-down, timeouts...
}

// apiUser is a user answer. Numbers decode straight into int64 (never
// through float64: a retired generation is 2^63-1).
type apiUser struct {
	UID             int64    `json:"uid"`
	NodeID          *int64   `json:"node_id"`
	Generation      int64    `json:"generation"`
	KeysChangedAt   *int64   `json:"keys_changed_at"`
	ClientState     string   `json:"client_state"`
	OldClientStates []string `json:"old_client_states"`
	ReplacedAt      *int64   `json:"replaced_at"`
	FxaKid          string   `json:"fxa_kid"`
}

func (u apiUser) view() UserView {
	v := UserView{UID: u.UID, Generation: u.Generation, KeysChangedAt: fsm.Null, ClientState: u.ClientState,
		OldClientStates: u.OldClientStates, Replaced: u.ReplacedAt != nil}
	if u.NodeID != nil {
		v.NodeID = *u.NodeID
	}
	if u.KeysChangedAt != nil {
		v.KeysChangedAt = *u.KeysChangedAt
	}
	if len(v.OldClientStates) == 0 {
		v.OldClientStates = nil
	}
	return v
}

// userOutput decodes a definite answer to a user operation.
func userOutput(r response) (UserOutput, error) {
	if r.code >= 300 {
		return UserOutput{Status: r.errStatus}, nil
	}
	var u apiUser
	if err := json.Unmarshal(r.body, &u); err != nil {
		return UserOutput{}, fmt.Errorf("decode user: %w", err)
	}
	if u.UID == 0 {
		return UserOutput{}, errors.New("decode user: answer has no uid")
	}
	return UserOutput{Created: r.code == http.StatusCreated, User: u.view(), FxaKid: u.FxaKid}, nil
}

type apiRecord struct {
	UID           int64  `json:"uid"`
	NodeID        *int64 `json:"node_id"`
	Generation    int64  `json:"generation"`
	KeysChangedAt *int64 `json:"keys_changed_at"`
	ClientState   string `json:"client_state"`
	CreatedAt     int64  `json:"created_at"`
	ReplacedAt    *int64 `json:"replaced_at"`
}

func (a apiRecord) view() RecordView {
	r := RecordView{UID: a.UID, Generation: a.Generation, KeysChangedAt: fsm.Null, ClientState: a.ClientState,
		CreatedAt: a.CreatedAt, ReplacedAt: fsm.Null}
	if a.NodeID != nil {
		r.NodeID = *a.NodeID
	}
	if a.KeysChangedAt != nil {
		r.KeysChangedAt = *a.KeysChangedAt
	}
	if a.ReplacedAt != nil {
		r.ReplacedAt = *a.ReplacedAt
	}
	return r
}

// Paths of docs/api.md.
func serviceURL(httpAddr, service string) string {
	return "http://" + httpAddr + "/v1/services/" + url.PathEscape(service)
}

func userURL(httpAddr, service, email string) string {
	return serviceURL(httpAddr, service) + "/users/" + url.PathEscape(email)
}
