package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
)

// ErrWrongIdentity is a data dir started, without --join, as a member its
// Raft configuration does not hold: nobody would ever add it, and Raft
// itself would start and idle for ever ("not part of a stable
// configuration"), so the store refuses at open and says which members the
// data dir has. With --join the member asks to be added (a member removed
// and restarted on its data does that), so it passes. A new address is
// never refused: Raft knows a member by its id, a lone member elects
// itself wherever it listens, and others re-address a member that joins.
var ErrWrongIdentity = errors.New("data dir belongs to another member")

// checkIdentity compares id with the configuration the data dir holds; a
// data dir with no configuration yet (new, or a member that has not
// received one) passes, and so does a member that will ask to join.
func checkIdentity(dataDir, id string, joining bool, cfg raft.Configuration) error {
	if len(cfg.Servers) == 0 || joining {
		return nil
	}
	var have []string
	for _, s := range cfg.Servers {
		if string(s.ID) == id {
			return nil
		}
		have = append(have, fmt.Sprintf("%s at %s", s.ID, s.Address))
	}
	return fmt.Errorf("%w: data dir %s has no member %q in its Raft configuration (it has %s), and without --join nobody would add it: start it with the --id it was made for, give --join to have it added, or give a new member an empty --data-dir",
		ErrWrongIdentity, dataDir, id, strings.Join(have, ", "))
}
