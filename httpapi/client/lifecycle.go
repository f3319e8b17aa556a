package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

// Import sends one import batch (docs/api.md "Import"). Admin token.
func (c *Client) Import(ctx context.Context, batch *wire.ImportBatch, opts ...CallOptions) (*wire.ImportResult, Meta, error) {
	var out wire.ImportResult
	meta, err := c.do(ctx, http.MethodPost, "/v1/import", nil, batch, &out, opts)
	if err != nil {
		return nil, meta, err
	}
	return &out, meta, nil
}

// Backup streams GET /v1/backup into w and returns the Raft index of the
// backup's state. The client's timeout does not apply (a backup of a large
// state takes long); ctx bounds it. The caller should verify what it wrote
// (store.ReadBackup): a connection cut mid-way leaves a truncated file.
func (c *Client) Backup(ctx context.Context, w io.Writer) (uint64, Meta, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/backup", nil)
	if err != nil {
		return 0, Meta{}, fmt.Errorf("wimms client: build backup request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, Meta{}, fmt.Errorf("wimms client: GET /v1/backup: %w", err)
	}
	defer resp.Body.Close()
	meta := metaFrom(resp)
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		return 0, meta, decodeAPIError(resp, data)
	}
	index, _ := strconv.ParseUint(resp.Header.Get("X-Wimms-Backup-Index"), 10, 64)
	if _, err := io.Copy(w, resp.Body); err != nil {
		return index, meta, fmt.Errorf("wimms client: reading backup: %w", err)
	}
	return index, meta, nil
}
