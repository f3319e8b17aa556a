package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

func servicePath(service string) string { return "/v1/services/" + segment(service) }
func nodePath(service string, id int64) string {
	return servicePath(service) + "/nodes/" + strconv.FormatInt(id, 10)
}
func userPath(service, email string) string { return servicePath(service) + "/users/" + segment(email) }

// ---- services ----

// PutService creates (Meta.Created) or updates a service.
func (c *Client) PutService(ctx context.Context, service string, req wire.PutServiceRequest, opts ...CallOptions) (*wire.Service, Meta, error) {
	var out wire.Service
	m, err := c.do(ctx, http.MethodPut, servicePath(service), nil, req, &out, opts)
	return nilOnErr(&out, err), m, err
}

func (c *Client) GetService(ctx context.Context, service string, opts ...CallOptions) (*wire.Service, Meta, error) {
	var out wire.Service
	m, err := c.do(ctx, http.MethodGet, servicePath(service), nil, nil, &out, opts)
	return nilOnErr(&out, err), m, err
}

func (c *Client) ListServices(ctx context.Context, opts ...CallOptions) ([]wire.Service, Meta, error) {
	var out struct {
		Services []wire.Service `json:"services"`
	}
	m, err := c.do(ctx, http.MethodGet, "/v1/services", nil, nil, &out, opts)
	return out.Services, m, err
}

// DeleteService deletes a service that has no nodes and no records.
func (c *Client) DeleteService(ctx context.Context, service string, opts ...CallOptions) (Meta, error) {
	return c.do(ctx, http.MethodDelete, servicePath(service), nil, nil, nil, opts)
}

// ---- nodes ----

func (c *Client) AddNode(ctx context.Context, service string, req wire.AddNodeRequest, opts ...CallOptions) (*wire.Node, Meta, error) {
	var out wire.Node
	m, err := c.do(ctx, http.MethodPost, servicePath(service)+"/nodes", nil, req, &out, opts)
	return nilOnErr(&out, err), m, err
}

// ListNodes lists a service's nodes ordered by id.
func (c *Client) ListNodes(ctx context.Context, service string, opts ...CallOptions) ([]wire.Node, Meta, error) {
	var out struct {
		Nodes []wire.Node `json:"nodes"`
	}
	m, err := c.do(ctx, http.MethodGet, servicePath(service)+"/nodes", nil, nil, &out, opts)
	return out.Nodes, m, err
}

// ListNodesByURL looks a node up by its URL (GET .../nodes?node=URL), as
// the token server's admin scripts address nodes: the answer holds that
// node or nothing. A server older than the lookup refuses the parameter
// with a 400 naming "node" in the querystring (see IsUnknownQueryParameter).
func (c *Client) ListNodesByURL(ctx context.Context, service, nodeURL string, opts ...CallOptions) ([]wire.Node, Meta, error) {
	var out struct {
		Nodes []wire.Node `json:"nodes"`
	}
	m, err := c.do(ctx, http.MethodGet, servicePath(service)+"/nodes", url.Values{"node": {nodeURL}}, nil, &out, opts)
	return out.Nodes, m, err
}

func (c *Client) GetNode(ctx context.Context, service string, id int64, opts ...CallOptions) (*wire.Node, Meta, error) {
	var out wire.Node
	m, err := c.do(ctx, http.MethodGet, nodePath(service, id), nil, nil, &out, opts)
	return nilOnErr(&out, err), m, err
}

func (c *Client) UpdateNode(ctx context.Context, service string, id int64, req wire.UpdateNodeRequest, opts ...CallOptions) (*wire.Node, Meta, error) {
	var out wire.Node
	m, err := c.do(ctx, http.MethodPatch, nodePath(service, id), nil, req, &out, opts)
	return nilOnErr(&out, err), m, err
}

// UnassignNode marks every record on the node replaced; it returns how many.
func (c *Client) UnassignNode(ctx context.Context, service string, id int64, opts ...CallOptions) (int64, Meta, error) {
	var out struct {
		Unassigned int64 `json:"unassigned"`
	}
	m, err := c.do(ctx, http.MethodPost, nodePath(service, id)+"/unassign", nil, nil, &out, opts)
	return out.Unassigned, m, err
}

// RemoveNode deletes the node and unassigns its records; it returns how many.
func (c *Client) RemoveNode(ctx context.Context, service string, id int64, opts ...CallOptions) (int64, Meta, error) {
	var out struct {
		Unassigned int64 `json:"unassigned"`
	}
	m, err := c.do(ctx, http.MethodDelete, nodePath(service, id), nil, nil, &out, opts)
	return out.Unassigned, m, err
}

// ---- users ----

// Allocate gets or creates a user's assignment (Meta.Created: a record was
// created).
func (c *Client) Allocate(ctx context.Context, service string, req wire.AllocateRequest, opts ...CallOptions) (*wire.User, Meta, error) {
	var out wire.User
	m, err := c.do(ctx, http.MethodPost, servicePath(service)+"/users", nil, req, &out, opts)
	return nilOnErr(&out, err), m, err
}

func (c *Client) GetUser(ctx context.Context, service, email string, opts ...CallOptions) (*wire.User, Meta, error) {
	var out wire.User
	m, err := c.do(ctx, http.MethodGet, userPath(service, email), nil, nil, &out, opts)
	return nilOnErr(&out, err), m, err
}

func (c *Client) UpdateUser(ctx context.Context, service, email string, req wire.UpdateUserRequest, opts ...CallOptions) (*wire.User, Meta, error) {
	var out wire.User
	m, err := c.do(ctx, http.MethodPatch, userPath(service, email), nil, req, &out, opts)
	return nilOnErr(&out, err), m, err
}

// Login runs the token server's whole sign-in decision.
func (c *Client) Login(ctx context.Context, service, email string, req wire.LoginRequest, opts ...CallOptions) (*wire.LoginResult, Meta, error) {
	var out wire.LoginResult
	m, err := c.do(ctx, http.MethodPost, userPath(service, email)+"/login", nil, req, &out, opts)
	return nilOnErr(&out, err), m, err
}

func (c *Client) Retire(ctx context.Context, service, email string, opts ...CallOptions) (*wire.User, Meta, error) {
	var out wire.User
	m, err := c.do(ctx, http.MethodPost, userPath(service, email)+"/retire", nil, nil, &out, opts)
	return nilOnErr(&out, err), m, err
}

// Replace marks the user's live records created at or before at (nil: now)
// replaced; it returns how many.
func (c *Client) Replace(ctx context.Context, service, email string, at *int64, opts ...CallOptions) (int64, Meta, error) {
	body := struct {
		At *int64 `json:"at,omitempty"`
	}{at}
	var out struct {
		Replaced int64 `json:"replaced"`
	}
	m, err := c.do(ctx, http.MethodPost, userPath(service, email)+"/replace", nil, body, &out, opts)
	return out.Replaced, m, err
}

// Records lists a user's stored records, oldest first.
func (c *Client) Records(ctx context.Context, service, email string, opts ...CallOptions) ([]wire.Record, Meta, error) {
	var out struct {
		Records []wire.Record `json:"records"`
	}
	m, err := c.do(ctx, http.MethodGet, userPath(service, email)+"/records", nil, nil, &out, opts)
	return out.Records, m, err
}

// OldRecords lists records replaced before now − grace (the purge job's
// listing).
func (c *Client) OldRecords(ctx context.Context, service string, q OldRecordsQuery, opts ...CallOptions) ([]wire.Record, Meta, error) {
	query := url.Values{}
	if q.GraceMs != nil {
		query.Set("grace_ms", strconv.FormatInt(*q.GraceMs, 10))
	}
	if q.Limit != 0 {
		query.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset != 0 {
		query.Set("offset", strconv.Itoa(q.Offset))
	}
	var out struct {
		Records []wire.Record `json:"records"`
	}
	m, err := c.do(ctx, http.MethodGet, servicePath(service)+"/records/old", query, nil, &out, opts)
	return out.Records, m, err
}

// DeleteRecord purges one record.
func (c *Client) DeleteRecord(ctx context.Context, service string, uid int64, opts ...CallOptions) (Meta, error) {
	return c.do(ctx, http.MethodDelete, servicePath(service)+"/records/"+strconv.FormatInt(uid, 10), nil, nil, nil, opts)
}

func (c *Client) Stats(ctx context.Context, service string, opts ...CallOptions) (*wire.Stats, Meta, error) {
	var out wire.Stats
	m, err := c.do(ctx, http.MethodGet, servicePath(service)+"/stats", nil, nil, &out, opts)
	return nilOnErr(&out, err), m, err
}

// CountUsers counts live records created at or before asOf (nil: now), in
// one service or ("") all.
func (c *Client) CountUsers(ctx context.Context, service string, asOf *int64, opts ...CallOptions) (*wire.Count, Meta, error) {
	query := url.Values{}
	if service != "" {
		query.Set("service", service)
	}
	if asOf != nil {
		query.Set("as_of", strconv.FormatInt(*asOf, 10))
	}
	var out wire.Count
	m, err := c.do(ctx, http.MethodGet, "/v1/users/count", query, nil, &out, opts)
	return nilOnErr(&out, err), m, err
}

// Event applies an account event in every service; it returns how many
// users it touched.
func (c *Client) Event(ctx context.Context, req wire.EventRequest, opts ...CallOptions) (int64, Meta, error) {
	var out struct {
		Applied int64 `json:"applied"`
	}
	m, err := c.do(ctx, http.MethodPost, "/v1/events", nil, req, &out, opts)
	return out.Applied, m, err
}

// ---- cluster ----

func (c *Client) Cluster(ctx context.Context, opts ...CallOptions) (*wire.ClusterStatus, Meta, error) {
	var out wire.ClusterStatus
	m, err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, nil, &out, opts)
	return nilOnErr(&out, err), m, err
}

func (c *Client) Join(ctx context.Context, req wire.JoinRequest, opts ...CallOptions) (Meta, error) {
	return c.do(ctx, http.MethodPost, "/v1/cluster/members", nil, req, nil, opts)
}

func (c *Client) RemoveMember(ctx context.Context, id string, opts ...CallOptions) (Meta, error) {
	return c.do(ctx, http.MethodDelete, "/v1/cluster/members/"+segment(id), nil, nil, nil, opts)
}

// TransferLeadership hands leadership to id, or to any voter when id is "".
func (c *Client) TransferLeadership(ctx context.Context, id string, opts ...CallOptions) (Meta, error) {
	body := struct {
		ID string `json:"id,omitempty"`
	}{id}
	return c.do(ctx, http.MethodPost, "/v1/cluster/leader", nil, body, nil, opts)
}

// Healthz succeeds while the member serves.
func (c *Client) Healthz(ctx context.Context) (Meta, error) {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil, nil)
}

// Readyz succeeds when the member knows a leader and has caught up; else
// it returns an *APIError with status "not-ready".
func (c *Client) Readyz(ctx context.Context) (Meta, error) {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil, nil)
}

func nilOnErr[T any](v *T, err error) *T {
	if err != nil {
		return nil
	}
	return v
}
