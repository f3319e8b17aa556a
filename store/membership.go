package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Server is one member of the Raft configuration.
type Server struct {
	ID      string
	Address string // Raft address
	Voter   bool
}

// Servers is the current raft configuration (the latest one, possibly not
// yet committed).
func (s *Store) Servers() ([]Server, error) {
	servers, err := s.raftServers()
	if err != nil {
		return nil, err
	}
	out := make([]Server, 0, len(servers))
	for _, srv := range servers {
		out = append(out, Server{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return out, nil
}

// AdmitRaftPeers lets the Raft port accept member certificates for ids
// (besides those of its own configuration) for a few minutes: the caller
// learnt from a member over mutual TLS that they are the cluster's members,
// which this member's configuration may be too stale to know. A no-op
// without TLS (the port accepts anyone then).
func (s *Store) AdmitRaftPeers(ids []string) {
	if s.tlsStream != nil {
		s.tlsStream.vouch(ids, time.Now())
	}
}

// IsServer reports whether id is a server of the latest Raft
// configuration (false when it cannot be read).
func (s *Store) IsServer(id string) bool {
	servers, err := s.raftServers()
	if err != nil {
		return false
	}
	for _, srv := range servers {
		if string(srv.ID) == id {
			return true
		}
	}
	return false
}

func (s *Store) raftServers() ([]raft.Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrRaftShutdown) {
			return nil, fmt.Errorf("reading raft configuration: %w", ErrShutdown)
		}
		return nil, fmt.Errorf("reading raft configuration: %w", err)
	}
	cfg := f.Configuration()
	return cfg.Clone().Servers, nil
}

// AddServer adds srv as a voter or a non-voter (promoting an existing
// non-voter when srv.Voter). Leader only.
func (s *Store) AddServer(ctx context.Context, srv Server) error {
	if srv.Voter {
		return s.AddVoter(ctx, srv.ID, srv.Address)
	}
	return s.AddNonvoter(ctx, srv.ID, srv.Address)
}

// AddVoter adds (or promotes) a voting member. Leader only.
func (s *Store) AddVoter(ctx context.Context, id, raftAddr string) error {
	op := fmt.Sprintf("add voter %s at %s", id, raftAddr)
	return s.changeMembership(ctx, op, func() raft.IndexFuture {
		return s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, s.cfg.ApplyTimeout)
	})
}

// AddNonvoter adds a member that receives the log but does not vote. Leader
// only.
func (s *Store) AddNonvoter(ctx context.Context, id, raftAddr string) error {
	op := fmt.Sprintf("add non-voter %s at %s", id, raftAddr)
	return s.changeMembership(ctx, op, func() raft.IndexFuture {
		return s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, s.cfg.ApplyTimeout)
	})
}

// RemoveServer removes a member; ErrMemberNotFound if the configuration does
// not hold it. Leader only.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	op := "remove member " + id
	if _, ok, err := s.findServer(id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	} else if !ok {
		return fmt.Errorf("%s: %w", op, ErrMemberNotFound)
	}
	return s.changeMembership(ctx, op, func() raft.IndexFuture {
		return s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout)
	})
}

func (s *Store) changeMembership(ctx context.Context, op string, submit func() raft.IndexFuture) error {
	if s.closing.Load() {
		return fmt.Errorf("%s: %w", op, ErrShutdown)
	}
	if !s.IsLeader() {
		return s.notLeader(op)
	}
	f := submit()
	if err := s.waitFuture(ctx, f, s.cfg.ApplyTimeout); err != nil {
		return s.classifyMembershipError(op, err)
	}
	s.logger.Info("membership changed", "change", op, "index", f.Index())
	return nil
}

func (s *Store) classifyMembershipError(op string, err error) error {
	switch {
	case errors.Is(err, errWaitAbandoned):
		return fmt.Errorf("%s: %w: %w", op, ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrNotLeader):
		return s.notLeader(op)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%s: %w: %w", op, ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%s: %w", op, ErrShutdown)
	case errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%s: %w: %w", op, ErrNoLeader, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// TransferLeadership hands leadership to the voter id, or to the most
// up-to-date voter when id is "". It returns once raft reports the transfer
// done (or failed). Leader only.
func (s *Store) TransferLeadership(ctx context.Context, id string) error {
	op := "transfer leadership"
	if id != "" {
		op += " to " + id
	}
	if s.closing.Load() {
		return fmt.Errorf("%s: %w", op, ErrShutdown)
	}
	if !s.IsLeader() {
		return s.notLeader(op)
	}
	var f raft.Future
	if id == "" {
		f = s.raft.LeadershipTransfer()
	} else {
		srv, ok, err := s.findServer(id)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if !ok {
			return fmt.Errorf("%s: %w", op, ErrMemberNotFound)
		}
		if id == s.cfg.ID {
			return nil // already the leader
		}
		if srv.Suffrage != raft.Voter {
			return fmt.Errorf("%s: member is not a voter", op)
		}
		f = s.raft.LeadershipTransferToServer(srv.ID, srv.Address)
	}
	if err := s.waitFuture(ctx, f, 0); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return s.notLeader(op)
		case errors.Is(err, raft.ErrRaftShutdown):
			return fmt.Errorf("%s: %w", op, ErrShutdown)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	s.logger.Info("leadership transferred", "to", id)
	return nil
}

func (s *Store) findServer(id string) (raft.Server, bool, error) {
	servers, err := s.raftServers()
	if err != nil {
		return raft.Server{}, false, err
	}
	for _, srv := range servers {
		if string(srv.ID) == id {
			return srv, true, nil
		}
	}
	return raft.Server{}, false, nil
}
