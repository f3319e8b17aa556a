package wire

// ImportBatch is the body of POST /v1/import (admin): services, nodes and
// user records written with the ids, uids and times they already have
// (a token server's MySQL tables, docs/operations.md).
type ImportBatch struct {
	Services []ImportService `json:"services"`
	Nodes    []ImportNode    `json:"nodes"`
	Records  []ImportRecord  `json:"records"`
}

// ImportService is a service of an import batch, matched by name.
type ImportService struct {
	ID      int64  `json:"id"`
	Service string `json:"service"`
	Pattern string `json:"pattern"`
}

// ImportNode is a node of an import batch, matched by (service, URL).
type ImportNode struct {
	ID        int64  `json:"id"`
	Service   string `json:"service"`
	Node      string `json:"node"`
	Capacity  int64  `json:"capacity"`
	Available int64  `json:"available"`
	Downed    bool   `json:"downed"`
	Backoff   bool   `json:"backoff"`
}

// ImportRecord is a user record of an import batch, matched by uid.
type ImportRecord struct {
	UID           int64  `json:"uid"`
	Service       string `json:"service"`
	Email         string `json:"email"`
	NodeID        int64  `json:"node_id"`
	Generation    int64  `json:"generation"`
	KeysChangedAt *int64 `json:"keys_changed_at"`
	ClientState   string `json:"client_state"`
	CreatedAt     int64  `json:"created_at"`
	ReplacedAt    *int64 `json:"replaced_at"`
}

// ImportCount counts one kind of item of an import batch.
type ImportCount struct {
	Created   int64 `json:"created"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
}

// ImportResult is the answer of POST /v1/import.
type ImportResult struct {
	Services ImportCount `json:"services"`
	Nodes    ImportCount `json:"nodes"`
	Records  ImportCount `json:"records"`
}
