// Package purge is the token server's purge_old_records job: it pages
// through records replaced longer ago than a grace period, asks each
// record's storage node to delete the user's data, and deletes the record
// only once the node confirmed (or when told to --force past downed
// nodes). It reaches wimms and the nodes through small interfaces.
package purge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/ctxtime"
	"github.com/wimms-dev/wimms/tokenserver/hawk"
)

// Record is one replaced record, as GET .../records/old lists it.
type Record struct {
	UID           int64
	Email         string
	Node          string // "" when the node was removed
	Downed        bool
	Generation    int64
	KeysChangedAt int64
	ClientState   string
}

// Records is the wimms side (the API's old-records listing and delete).
type Records interface {
	OldRecords(ctx context.Context, service string, grace time.Duration, limit, offset int) ([]Record, error)
	// DeleteRecord removes a record; a record already gone is not an error.
	DeleteRecord(ctx context.Context, service string, uid int64) error
}

// Nodes deletes a user's data on its storage node.
type Nodes interface {
	DeleteUserData(ctx context.Context, r Record) error
}

// Config of a purge.
type Config struct {
	Service    string
	Grace      time.Duration // records replaced at least this long ago
	MaxPerLoop int           // page size
	MaxRecords int           // stop a pass after this many records (0: no limit)
	DryRun     bool          // list and report, change nothing anywhere
	Force      bool          // delete records on downed nodes without asking the node
	Logger     hclog.Logger
}

// NodeSummary counts one node's outcomes.
type NodeSummary struct {
	Purged  int `json:"purged"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// Summary is the outcome of one pass.
type Summary struct {
	Service       string                  `json:"service"`
	DryRun        bool                    `json:"dry_run"`
	Pages         int                     `json:"pages"`
	Seen          int                     `json:"seen"`
	Purged        int                     `json:"purged"`         // node confirmed (or had none) and the record is gone
	Forced        int                     `json:"forced"`         // deleted on a downed node without asking it (--force)
	NoNode        int                     `json:"no_node"`        // the node was removed: deleted without asking
	SkippedDowned int                     `json:"skipped_downed"` // on a downed node, kept (no --force)
	WouldPurge    int                     `json:"would_purge"`    // --dry-run
	Failed        int                     `json:"failed"`         // node or delete failed: kept for the next pass
	Nodes         map[string]*NodeSummary `json:"nodes"`
}

func (s *Summary) node(n string) *NodeSummary {
	if s.Nodes[n] == nil {
		s.Nodes[n] = &NodeSummary{}
	}
	return s.Nodes[n]
}

// Once runs one pass over the old records.
func Once(ctx context.Context, cfg Config, recs Records, nodes Nodes) (Summary, error) {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if cfg.MaxPerLoop <= 0 {
		cfg.MaxPerLoop = 100
	}
	sum := Summary{Service: cfg.Service, DryRun: cfg.DryRun, Nodes: map[string]*NodeSummary{}}
	// Records left in place (kept, failed, dry run) stay in the listing
	// ahead of the unvisited ones, so the next page starts after them.
	offset := 0
	// A node that failed once in this pass is not asked again: its other
	// records wait for the next pass instead of each waiting for a timeout.
	failing := map[string]error{}
	for {
		limit := cfg.MaxPerLoop
		if cfg.MaxRecords > 0 {
			limit = min(limit, cfg.MaxRecords-sum.Seen)
			if limit <= 0 {
				break
			}
		}
		page, err := recs.OldRecords(ctx, cfg.Service, cfg.Grace, limit, offset)
		if err != nil {
			return sum, fmt.Errorf("listing old records at offset %d: %w", offset, err)
		}
		sum.Pages++
		for _, r := range page {
			if ctx.Err() != nil {
				return sum, ctx.Err()
			}
			sum.Seen++
			kept := purgeOne(ctx, cfg, recs, nodes, r, &sum, failing, log)
			if kept {
				offset++
			}
		}
		log.Info("purge progress", "service", cfg.Service, "page", sum.Pages, "seen", sum.Seen, "purged", sum.Purged+sum.Forced+sum.NoNode,
			"failed", sum.Failed, "skipped_downed", sum.SkippedDowned)
		if len(page) < limit {
			break
		}
	}
	return sum, nil
}

// purgeOne handles one record and reports whether it stays in the listing.
func purgeOne(ctx context.Context, cfg Config, recs Records, nodes Nodes, r Record, sum *Summary, failing map[string]error, log hclog.Logger) bool {
	switch {
	case r.Node == "":
		if cfg.DryRun {
			sum.WouldPurge++
			return true
		}
		if err := recs.DeleteRecord(ctx, cfg.Service, r.UID); err != nil {
			sum.Failed++
			log.Warn("deleting a record failed", "uid", r.UID, "error", err)
			return true
		}
		sum.NoNode++
		return false
	case r.Downed && !cfg.Force:
		sum.SkippedDowned++
		sum.node(r.Node).Skipped++
		return true
	case cfg.DryRun:
		sum.WouldPurge++
		return true
	}
	ns := sum.node(r.Node)
	if !r.Downed {
		if prev := failing[r.Node]; prev != nil {
			sum.Failed++
			ns.Failed++
			return true
		}
		if err := nodes.DeleteUserData(ctx, r); err != nil {
			sum.Failed++
			ns.Failed++
			if errors.Is(err, ErrUnsignable) {
				// The record, not the node, is at fault: the node's other
				// records are still asked.
				log.Warn("a record cannot be signed for; it stays, the node's other records go on", "node", r.Node, "uid", r.UID, "reason", err)
				return true
			}
			failing[r.Node] = err
			log.Warn("storage node did not delete the user's data; its records stay for the next pass", "node", r.Node, "uid", r.UID, "error", err)
			return true
		}
	}
	if err := recs.DeleteRecord(ctx, cfg.Service, r.UID); err != nil {
		sum.Failed++
		ns.Failed++
		log.Warn("deleting a record failed", "uid", r.UID, "error", err)
		return true
	}
	if r.Downed {
		sum.Forced++
	} else {
		sum.Purged++
	}
	ns.Purged++
	return false
}

// Loop runs passes until ctx ends, sleeping interval plus a random jitter
// in [0, jitter) between them so that several purgers do not align.
func Loop(ctx context.Context, cfg Config, recs Records, nodes Nodes, interval, jitter time.Duration, report func(Summary, error)) {
	for {
		report(Once(ctx, cfg, recs, nodes))
		wait := interval
		if jitter > 0 {
			wait += rand.N(jitter)
		}
		if !ctxtime.Sleep(ctx, wait) {
			return
		}
	}
}

// Minter mints a token and derived secret for a record's node
// (tokenserver.Minter implements it).
type Minter interface {
	Mint(node string, uid int64, fxaUID, fxaKid string, d time.Duration) (id, key string, err error)
}

// HawkNodes deletes user data with DELETE {node}/1.5/{uid}, signed with
// Hawk using a token minted for the record, as the token server's purge
// does. 2xx and 404 (nothing stored) confirm.
type HawkNodes struct {
	Minter Minter
	Client *http.Client
	Now    func() time.Time
}

func (h *HawkNodes) DeleteUserData(ctx context.Context, r Record) error {
	kid, err := recordKid(r)
	if err != nil {
		return err
	}
	fxaUID, _, _ := strings.Cut(r.Email, "@")
	id, key, err := h.Minter.Mint(r.Node, r.UID, fxaUID, kid, 5*time.Minute)
	if err != nil {
		return fmt.Errorf("minting a token: %w", err)
	}
	url := strings.TrimRight(r.Node, "/") + "/1.5/" + strconv.FormatInt(r.UID, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	if err != nil {
		return fmt.Errorf("delete request: %w", err)
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	if err := hawk.Sign(req, id, key, now()); err != nil {
		return err
	}
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return fmt.Errorf("DELETE %s: %w", url, &StatusError{Code: resp.StatusCode})
}

// ErrUnsignable marks a listed record whose fields cannot form a token:
// its node is not asked and the record stays, while the node's other
// records go on.
var ErrUnsignable = errors.New("the record cannot be signed for")

// recordKid is the fxa_kid of the tokens the user held for r: the state
// machine's own rule (fsm.FxaKid), so the DELETE names the kid the
// record's login answers gave. A record the state machine could not have
// stored (it came over HTTP) is refused rather than signed for with a
// made-up kid; the reason names the field, never its value.
func recordKid(r Record) (string, error) {
	switch {
	case !fsm.ValidClientState(r.ClientState):
		return "", fmt.Errorf("uid %d: %w: its client state is not [A-Za-z0-9._-]{0,32}", r.UID, ErrUnsignable)
	case r.Generation < 0 || r.KeysChangedAt < 0:
		return "", fmt.Errorf("uid %d: %w: a negative generation or keys_changed_at", r.UID, ErrUnsignable)
	}
	return fsm.FxaKid(r.KeysChangedAt, r.Generation, r.ClientState), nil
}

// StatusError is a storage node's refusal.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return "status " + strconv.Itoa(e.Code) }

// IsStatus reports whether err is a node answering code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}
