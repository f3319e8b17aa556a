package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

// ProbeMember asks the member at httpAddr how far it has applied the log:
// every answer of the API carries the member's applied index in
// X-Wimms-Index, and /healthz needs no token and touches no state.
func (c *Cluster) ProbeMember(ctx context.Context, httpAddr string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.members.URL(httpAddr, "/healthz"), nil)
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", httpAddr, err)
	}
	resp, err := c.members.Do(req)
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", httpAddr, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("probe %s: /healthz answered %s", httpAddr, resp.Status)
	}
	idx, err := strconv.ParseUint(resp.Header.Get(wire.HeaderIndex), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("probe %s: bad %s header: %w", httpAddr, wire.HeaderIndex, err)
	}
	return idx, nil
}

// ProbeActivity asks the member at httpAddr for its sign-in and allocation
// counters (GET /v1/member/activity), with the Authorization of the call
// being answered: the API decides who may read them, on every member alike.
func (c *Cluster) ProbeActivity(ctx context.Context, httpAddr, authorization string) (wire.MemberActivity, error) {
	var a wire.MemberActivity
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.members.URL(httpAddr, "/v1/member/activity"), nil)
	if err != nil {
		return a, fmt.Errorf("activity of %s: %w", httpAddr, err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.members.Do(req)
	if err != nil {
		return a, fmt.Errorf("activity of %s: %w", httpAddr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return a, fmt.Errorf("activity of %s: %w", httpAddr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("activity of %s: %s", httpAddr, resp.Status)
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("activity of %s: %w", httpAddr, err)
	}
	return a, nil
}
