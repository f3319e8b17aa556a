package purge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/tokenserver"
	"github.com/wimms-dev/wimms/tokenserver/hawk"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

// fakeRecords lists records in a fixed order and forgets deleted ones, as
// the API's old-records listing does.
type fakeRecords struct {
	mu      sync.Mutex
	recs    []Record
	deleted []int64
	failDel map[int64]bool
}

func (f *fakeRecords) OldRecords(_ context.Context, _ string, _ time.Duration, limit, offset int) ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if offset >= len(f.recs) {
		return nil, nil
	}
	return slices.Clone(f.recs[offset:min(len(f.recs), offset+limit)]), nil
}

func (f *fakeRecords) DeleteRecord(_ context.Context, _ string, uid int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failDel[uid] {
		return errors.New("boom")
	}
	f.recs = slices.DeleteFunc(f.recs, func(r Record) bool { return r.UID == uid })
	f.deleted = append(f.deleted, uid)
	return nil
}

// storageNode checks every DELETE's token and Hawk MAC with the master
// secret, like a syncstorage-rs node, and answers status for its uids.
type storageNode struct {
	t      *testing.T
	secret string
	status int
	mu     sync.Mutex
	got    []int64
	kids   []string // fxa_kid of each accepted token
}

func (n *storageNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, err := hawk.Parse(r.Header.Get("Authorization"))
	if err != nil || r.Method != http.MethodDelete {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	payload, _, err := tokenlib.ParseToken(p.ID, n.secret)
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	key, _ := tokenlib.DerivedSecret(p.ID, payload.Salt, n.secret)
	req, _ := hawk.RequestOf(r.Method, r.URL, r.Host)
	if !hawk.Verify(p, key, req) || r.URL.Path != "/1.5/"+strconv.FormatInt(payload.UID, 10) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	n.mu.Lock()
	n.got = append(n.got, payload.UID)
	n.kids = append(n.kids, payload.FxaKid)
	n.mu.Unlock()
	w.WriteHeader(n.status)
}

func TestOncePurgesConfirmedRecordsOnly(t *testing.T) {
	const secret = "abcdef0123456789"
	good := &storageNode{t: t, secret: secret, status: http.StatusNoContent}
	gone := &storageNode{t: t, secret: secret, status: http.StatusNotFound}
	broken := &storageNode{t: t, secret: secret, status: http.StatusServiceUnavailable}
	wrongSecret := &storageNode{t: t, secret: "other", status: http.StatusNoContent}
	var urls []string
	for _, n := range []http.Handler{good, gone, broken, wrongSecret} {
		s := httptest.NewServer(n)
		defer s.Close()
		urls = append(urls, s.URL)
	}
	recs := &fakeRecords{}
	uid := int64(0)
	add := func(node string, downed bool) int64 {
		uid++
		recs.recs = append(recs.recs, Record{UID: uid, Email: "u" + strconv.FormatInt(uid, 10) + "@x", Node: node, Downed: downed, Generation: 5, ClientState: "aa"})
		return uid
	}
	g1, g2 := add(urls[0], false), add(urls[0], false)
	n1 := add(urls[1], false)
	b1, b2 := add(urls[2], false), add(urls[2], false)
	w1 := add(urls[3], false)
	d1 := add(urls[0], true)
	r1 := add("", false)
	g3 := add(urls[0], false)

	minter := &tokenserver.Minter{MasterSecrets: []string{"old", secret}, Mode: tokenlib.SecretModeMaster}
	nodes := &HawkNodes{Minter: minter}
	cfg := Config{Service: "sync-1.5", Grace: time.Hour, MaxPerLoop: 3}

	dry, err := Once(context.Background(), Config{Service: "sync-1.5", MaxPerLoop: 3, DryRun: true}, recs, nodes)
	if err != nil || dry.WouldPurge != 8 || dry.SkippedDowned != 1 || len(recs.deleted) != 0 || len(good.got) != 0 {
		t.Fatalf("dry run: %+v %v, deleted %v", dry, err, recs.deleted)
	}

	sum, err := Once(context.Background(), cfg, recs, nodes)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(recs.deleted)
	if want := []int64{g1, g2, n1, r1, g3}; !slices.Equal(recs.deleted, want) {
		t.Fatalf("deleted %v, want %v (summary %+v)", recs.deleted, want, sum)
	}
	if !slices.Equal(good.got, []int64{g1, g2, g3}) || !slices.Equal(gone.got, []int64{n1}) {
		t.Fatalf("node calls: good %v, gone %v", good.got, gone.got)
	}
	// The broken node is asked once; its second record waits.
	if len(broken.got) != 1 || broken.got[0] != b1 || len(wrongSecret.got) != 0 {
		t.Fatalf("broken %v, wrong secret %v", broken.got, wrongSecret.got)
	}
	if sum.Purged != 4 || sum.NoNode != 1 || sum.Failed != 3 || sum.SkippedDowned != 1 || sum.Seen != 9 {
		t.Fatalf("summary %+v", sum)
	}
	left := []int64{}
	for _, r := range recs.recs {
		left = append(left, r.UID)
	}
	if !slices.Equal(left, []int64{b1, b2, w1, d1}) {
		t.Fatalf("left %v", left)
	}

	// --force deletes the downed node's record without asking it.
	sum, err = Once(context.Background(), Config{Service: "sync-1.5", MaxPerLoop: 3, Force: true}, recs, nodes)
	if err != nil || sum.Forced != 1 || !slices.Contains(recs.deleted, d1) {
		t.Fatalf("force: %+v %v", sum, err)
	}
	if len(good.got) != 3 {
		t.Fatalf("the downed node was asked: %v", good.got)
	}
}

func TestOnceMaxRecordsAndDeleteFailure(t *testing.T) {
	recs := &fakeRecords{failDel: map[int64]bool{2: true}}
	for i := int64(1); i <= 10; i++ {
		recs.recs = append(recs.recs, Record{UID: i, Email: "x@y"})
	}
	sum, err := Once(context.Background(), Config{Service: "s-1", MaxPerLoop: 2, MaxRecords: 5}, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Seen != 5 || sum.NoNode != 4 || sum.Failed != 1 || !slices.Equal(recs.deleted, []int64{1, 3, 4, 5}) {
		t.Fatalf("summary %+v, deleted %v", sum, recs.deleted)
	}
}

func TestHawkNodesDerivedMode(t *testing.T) {
	const master = "0123456789abcdef0123456789abcdef"
	var nodeURL string
	node := &storageNode{t: t, status: http.StatusOK}
	srv := httptest.NewServer(node)
	defer srv.Close()
	nodeURL = srv.URL
	node.secret, _ = tokenlib.NodeSecret(tokenlib.SecretModeDerived, master, nodeURL)
	h := &HawkNodes{Minter: &tokenserver.Minter{MasterSecrets: []string{master}, Mode: tokenlib.SecretModeDerived}}
	if err := h.DeleteUserData(context.Background(), Record{UID: 9, Email: "a@b", Node: nodeURL, ClientState: "aa"}); err != nil {
		t.Fatal(err)
	}
	h.Minter = &tokenserver.Minter{MasterSecrets: []string{master}, Mode: tokenlib.SecretModeMaster}
	err := h.DeleteUserData(context.Background(), Record{UID: 9, Email: "a@b", Node: nodeURL})
	if !IsStatus(err, http.StatusUnauthorized) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("master-mode token on a derived-mode node: %v", err)
	}
}

// A client state that is not hex is one the data model allows (the admin
// API stores it): the DELETE is signed with the kid the state machine's
// login answers gave, never with an empty one.
func TestHawkNodesNonHexClientState(t *testing.T) {
	const secret = "abcdef0123456789"
	node := &storageNode{t: t, secret: secret, status: http.StatusNoContent}
	srv := httptest.NewServer(node)
	defer srv.Close()
	h := &HawkNodes{Minter: &tokenserver.Minter{MasterSecrets: []string{secret}, Mode: tokenlib.SecretModeMaster}}
	for _, r := range []Record{
		{UID: 1, Email: "a@b", Node: srv.URL, Generation: 9, ClientState: "abc.def"},
		{UID: 2, Email: "a@b", Node: srv.URL, Generation: 9, KeysChangedAt: 12, ClientState: "abc"},
	} {
		if err := h.DeleteUserData(context.Background(), r); err != nil {
			t.Fatalf("uid %d: %v", r.UID, err)
		}
	}
	if want := []string{"0000000000009-YWJjLmRlZg", "0000000000012-YWJj"}; !slices.Equal(node.kids, want) {
		t.Fatalf("kids %q, want %q", node.kids, want)
	}
	for i, r := range []struct {
		kca, gen int64
		cs       string
	}{{0, 9, "abc.def"}, {12, 9, "abc"}} {
		if k := fsm.FxaKid(r.kca, r.gen, r.cs); k != node.kids[i] {
			t.Fatalf("purge signed %q, the state machine answers %q", node.kids[i], k)
		}
	}
}

// A listed record the state machine could not have stored is refused with
// a logged reason: its node is not asked, the record stays, and the same
// node's other records are still purged.
func TestOnceRefusesUnsignableRecord(t *testing.T) {
	const secret = "abcdef0123456789"
	node := &storageNode{t: t, secret: secret, status: http.StatusNoContent}
	srv := httptest.NewServer(node)
	defer srv.Close()
	recs := &fakeRecords{recs: []Record{
		{UID: 1, Email: "a@b", Node: srv.URL, Generation: 5, ClientState: "not a state"},
		{UID: 2, Email: "b@b", Node: srv.URL, Generation: -1, ClientState: "aa"},
		{UID: 3, Email: "c@b", Node: srv.URL, Generation: 5, ClientState: "aa"},
	}}
	var logs strings.Builder
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	nodes := &HawkNodes{Minter: &tokenserver.Minter{MasterSecrets: []string{secret}, Mode: tokenlib.SecretModeMaster}}
	sum, err := Once(context.Background(), Config{Service: "sync-1.5", Logger: logger}, recs, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Purged != 1 || sum.Failed != 2 || !slices.Equal(recs.deleted, []int64{3}) || !slices.Equal(node.got, []int64{3}) {
		t.Fatalf("summary %+v, deleted %v, node asked for %v", sum, recs.deleted, node.got)
	}
	if slices.Contains(node.kids, "") {
		t.Fatalf("signed with an empty kid: %q", node.kids)
	}
	out := logs.String()
	if strings.Count(out, ErrUnsignable.Error()) != 2 || !strings.Contains(out, "client state is not") ||
		!strings.Contains(out, "negative generation") || strings.Contains(out, "not a state") {
		t.Fatalf("log lines:\n%s", out)
	}
}

func TestMetricsObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(Summary{Purged: 3, Failed: 1}, nil)
	m.Observe(Summary{Purged: 2}, nil)
	value := func(c prometheus.Counter) float64 {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	if got := value(m.Records.WithLabelValues("purged")); got != 5 {
		t.Fatalf("purged %v", got)
	}
	if f, ok := value(m.Passes.WithLabelValues("failed")), value(m.Passes.WithLabelValues("ok")); f != 1 || ok != 1 {
		t.Fatalf("passes failed %v ok %v", f, ok)
	}
}
