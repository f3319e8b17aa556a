package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
)

// ErrWrongIdentity is a data dir started as a member it does not belong
// to: its Raft configuration does not hold the --id given. Raft itself
// would start and idle for ever ("not part of a stable configuration"), so
// the store refuses at open and says which members the data dir has. A
// new address is not refused: Raft knows a member by its id, a lone member
// elects itself wherever it listens, and others re-address a member when
// it joins again.
var ErrWrongIdentity = errors.New("data dir belongs to another member")

// checkIdentity compares id with the configuration the data dir holds; a
// data dir with no configuration yet (new, or a member that has not
// received one) passes.
func checkIdentity(dataDir, id string, cfg raft.Configuration) error {
	if len(cfg.Servers) == 0 {
		return nil
	}
	var have []string
	for _, s := range cfg.Servers {
		if string(s.ID) == id {
			return nil
		}
		have = append(have, fmt.Sprintf("%s at %s", s.ID, s.Address))
	}
	return fmt.Errorf("%w: data dir %s has no member %q in its Raft configuration (it has %s): start it with the --id it was made for, or give a new member an empty --data-dir; a member removed from the cluster must be wiped before it joins again",
		ErrWrongIdentity, dataDir, id, strings.Join(have, ", "))
}
