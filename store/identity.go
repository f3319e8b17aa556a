package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
)

// ErrWrongIdentity is a data dir started as a member it does not belong
// to: its Raft configuration does not hold the --id given, or holds it at
// another address where no other member could ever re-address it. Raft
// itself would start and idle for ever ("not part of a stable
// configuration"), so the store refuses at open and says which identity
// the data dir has.
var ErrWrongIdentity = errors.New("data dir belongs to another member")

// checkIdentity compares id and addr with the configuration the data dir
// holds. A data dir with no configuration yet (new, or a member that has
// not received one) passes. An address change is allowed when other
// members exist: the member's authenticated join re-addresses it. It is
// refused when the configuration holds this member alone (a restored or
// one-member data dir), because then nobody could.
func checkIdentity(dataDir, id string, addr raft.ServerAddress, cfg raft.Configuration) error {
	if len(cfg.Servers) == 0 {
		return nil
	}
	var have []string
	for _, s := range cfg.Servers {
		have = append(have, fmt.Sprintf("%s at %s", s.ID, s.Address))
		if string(s.ID) != id {
			continue
		}
		if s.Address == addr || len(cfg.Servers) > 1 {
			return nil
		}
		return fmt.Errorf("%w: data dir %s holds member %s at raft address %s, but this member advertises %s: start it with --raft-advertise %s (or --raft-addr), or prepare the data dir again with `wimms restore --id %s --raft-addr %s`",
			ErrWrongIdentity, dataDir, id, s.Address, addr, s.Address, id, addr)
	}
	return fmt.Errorf("%w: data dir %s has no member %q in its Raft configuration (it has %s): start it with the --id it was made for, or give a new member an empty --data-dir; a member removed from the cluster must be wiped before it joins again",
		ErrWrongIdentity, dataDir, id, strings.Join(have, ", "))
}
