package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// etcdPeer is a 3-member etcd cluster on loopback, its members this
// executable run as etcd (etcdMemberArg), durable as shipped (every WAL
// append fsync'd).
type etcdPeer struct {
	members   []*member
	clis      []*clientv3.Client // one per member: client c uses clis[c % n]
	followers []*clientv3.Client // the members that do not lead
	nodeKeys  []string
}

const (
	etcdMembers    = 3
	etcdUserPrefix = "/users/"
	etcdNodePrefix = "/nodes/"
)

var errNoCapacity = errors.New("no node with free capacity")

func (e *etcdPeer) start(ctx context.Context, dir string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	base, err := freePorts(2 * etcdMembers)
	if err != nil {
		return err
	}
	client := func(i int) string { return "http://127.0.0.1:" + strconv.Itoa(base+2*i) }
	peerURL := func(i int) string { return "http://127.0.0.1:" + strconv.Itoa(base+2*i+1) }
	var cluster []string
	for i := range etcdMembers {
		cluster = append(cluster, fmt.Sprintf("m%d=%s", i, peerURL(i)))
	}
	for i := range etcdMembers {
		m, err := startMember(filepath.Join(dir, fmt.Sprintf("m%d.log", i)), self, etcdMemberArg,
			"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", client(i), "--advertise-client-urls", client(i),
			"--listen-peer-urls", peerURL(i), "--initial-advertise-peer-urls", peerURL(i),
			"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "benchpeers", "--log-level", "warn")
		if err != nil {
			e.stop()
			return err
		}
		e.members = append(e.members, m)
	}
	for i := range etcdMembers {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client(i)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			e.stop()
			return fmt.Errorf("etcd client of member %d: %w", i, err)
		}
		e.clis = append(e.clis, cli)
	}
	if err := waitUntil(60*time.Second, e.members, func() error { return e.findFollowers(ctx) }); err != nil {
		e.stop()
		return fmt.Errorf("etcd cluster: %w", err)
	}
	return nil
}

// findFollowers asks every member whom it follows; it fails until all
// agree on a leader.
func (e *etcdPeer) findFollowers(ctx context.Context) error {
	var followers []*clientv3.Client
	leaders := map[uint64]bool{}
	for _, cli := range e.clis {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, cli.Endpoints()[0])
		cancel()
		if err != nil {
			return fmt.Errorf("status of %s: %w", cli.Endpoints()[0], err)
		}
		if st.Leader == 0 {
			return fmt.Errorf("%s has no leader", cli.Endpoints()[0])
		}
		leaders[st.Leader] = true
		if st.Header.MemberId != st.Leader {
			followers = append(followers, cli)
		}
	}
	if len(leaders) != 1 || len(followers) != etcdMembers-1 {
		return fmt.Errorf("members disagree on the leader (%d leaders, %d followers)", len(leaders), len(followers))
	}
	e.followers = followers
	return nil
}

func (e *etcdPeer) pids() []int { return pidsOf(e.members) }

func (e *etcdPeer) stop() {
	for _, cli := range e.clis {
		_ = cli.Close()
	}
	stopAll(e.members)
}

func formatNode(count, capacity int64) string { return fmt.Sprintf("%d %d", count, capacity) }

func parseNode(v string) (count, capacity int64, err error) {
	if _, err := fmt.Sscanf(v, "%d %d", &count, &capacity); err != nil {
		return 0, 0, fmt.Errorf("node value %q: %w", v, err)
	}
	return count, capacity, nil
}

func (e *etcdPeer) setupAlloc(ctx context.Context, nodes int, capacity int64) error {
	e.nodeKeys = nil
	for i := range nodes {
		k := etcdNodePrefix + nodeName(i)
		if _, err := e.clis[0].Put(ctx, k, formatNode(0, capacity)); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
		e.nodeKeys = append(e.nodeKeys, k)
	}
	return nil
}

// alloc is one serializable STM transaction: it reads the user's key and
// every node counter (prefetched in one round trip), increments the least
// loaded node with capacity and creates the user; on a conflict the STM
// re-runs it with the values its failed commit fetched.
func (e *etcdPeer) alloc(ctx context.Context, c int, email string) (int, error) {
	userKey := etcdUserPrefix + email
	runs := 0
	_, err := concurrency.NewSTM(e.clis[c%len(e.clis)], func(s concurrency.STM) error {
		runs++
		if s.Get(userKey) != "" {
			return nil
		}
		best, bestCount, bestCap := -1, int64(0), int64(0)
		for i, k := range e.nodeKeys {
			n, capacity, err := parseNode(s.Get(k))
			if err != nil {
				return err
			}
			if n < capacity && (best < 0 || n < bestCount) {
				best, bestCount, bestCap = i, n, capacity
			}
		}
		if best < 0 {
			return errNoCapacity
		}
		s.Put(e.nodeKeys[best], formatNode(bestCount+1, bestCap))
		s.Put(userKey, nodeName(best))
		return nil
	}, concurrency.WithIsolation(concurrency.Serializable), concurrency.WithAbortContext(ctx),
		concurrency.WithPrefetch(append(e.nodeKeys[:len(e.nodeKeys):len(e.nodeKeys)], userKey)...))
	return max(0, runs-1), err
}

func (e *etcdPeer) checkAlloc(ctx context.Context, ok, failed int64) (string, error) {
	var sum int64
	var over []string
	for _, k := range e.nodeKeys {
		resp, err := e.clis[0].Get(ctx, k)
		if err != nil || len(resp.Kvs) != 1 {
			return "", fmt.Errorf("read %s: %v", k, err)
		}
		n, capacity, err := parseNode(string(resp.Kvs[0].Value))
		if err != nil {
			return "", err
		}
		sum += n
		if n > capacity {
			over = append(over, k)
		}
	}
	resp, err := e.clis[0].Get(ctx, etcdUserPrefix+"new-", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return "", fmt.Errorf("count users: %w", err)
	}
	return allocCheck(sum, resp.Count, over, ok, failed)
}

// setupLookup writes the users in transactions of 100 from 8 clients, then
// a marker, and waits until every follower has applied the marker (and so
// everything before it).
func (e *etcdPeer) setupLookup(ctx context.Context, users int) error {
	const batch, workers = 100, 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for from := w * batch; from < users; from += workers * batch {
				var ops []clientv3.Op
				for i := from; i < min(from+batch, users); i++ {
					ops = append(ops, clientv3.OpPut(etcdUserPrefix+lookupEmail(i), nodeName(i%max(1, len(e.nodeKeys)))))
				}
				if _, err := e.clis[w%len(e.clis)].Txn(ctx).Then(ops...).Commit(); err != nil {
					errs <- fmt.Errorf("prepare users: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	const marker = "/setup-done"
	if _, err := e.clis[0].Put(ctx, marker, "1"); err != nil {
		return fmt.Errorf("put marker: %w", err)
	}
	return waitUntil(30*time.Second, e.members, func() error {
		for _, f := range e.followers {
			resp, err := f.Get(ctx, marker, clientv3.WithSerializable())
			if err != nil || len(resp.Kvs) == 0 {
				return fmt.Errorf("follower %s has not applied the setup yet (%v)", f.Endpoints()[0], err)
			}
		}
		return nil
	})
}

// lookup is a serializable (local, possibly stale) read on a follower.
func (e *etcdPeer) lookup(ctx context.Context, c int, user int) error {
	resp, err := e.followers[c%len(e.followers)].Get(ctx, etcdUserPrefix+lookupEmail(user), clientv3.WithSerializable())
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return errors.New("user not found")
	}
	return nil
}
