package fsm

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Tests of the lock-free read path: readers load a published, immutable
// View; the writer publishes after each Apply and once per ApplyBatch.

// readerGuard bounds how long a test waits for a read that must not block.
// It only turns a would-be deadlock into a failure; passing never waits.
const readerGuard = 30 * time.Second

// TestReadsDoNotWaitForWriter holds the writer lock mid-Apply (the command
// has changed the writer's state, nothing is published yet) and runs every
// Reader method from another goroutine: each must return, and must show
// the state before the command.
func TestReadsDoNotWaitForWriter(t *testing.T) {
	f := New(Options{})
	mustOK(t, f, Command{Op: OpPutService, TS: t0, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	nd := *mustOK(t, f, Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: "https://n1", Capacity: SomeInt64(10)}).Node
	before := f.LastTS()

	hookRuns := 0
	f.afterCommandHook = func() {
		hookRuns++
		if f.mu.TryLock() {
			f.mu.Unlock()
			t.Fatal("hook ran without the writer lock held: the test would prove nothing")
		}
		if f.st.lastTS == before {
			t.Fatal("the writer's state has not moved yet: the test would prove nothing")
		}
		done := make(chan []string, 1)
		go func() { done <- preCommandViolations(f, nd, before) }()
		select {
		case bad := <-done:
			for _, b := range bad {
				t.Errorf("read during Apply: %s", b)
			}
		case <-time.After(readerGuard):
			t.Fatal("a read blocked while the writer held its lock")
		}
	}
	mustOK(t, f, Command{Op: OpAllocate, TS: t0 + 5, Service: svcA, Email: "a@x"})
	f.afterCommandHook = nil
	if hookRuns != 1 {
		t.Fatalf("hook ran %d times, want 1", hookRuns)
	}
	if u, err := f.GetUser(svcA, "a@x"); err != nil || u.NodeID != nd.ID {
		t.Fatalf("after Apply: GetUser = %+v, %v", u, err)
	}
	if got := f.LastTS(); got != t0+5 {
		t.Fatalf("after Apply: LastTS = %d, want %d", got, t0+5)
	}
}

// preCommandViolations reads through every Reader method of f and reports
// whatever does not match the state with one service, node nd (empty) and
// no users, last applied at lastTS.
func preCommandViolations(f *FSM, nd Node, lastTS int64) []string {
	var bad []string
	report := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	if got := f.LastTS(); got != lastTS {
		report("LastTS = %d, want %d", got, lastTS)
	}
	if _, err := f.GetService(svcA); err != nil {
		report("GetService: %v", err)
	}
	if got := f.ListServices(); len(got) != 1 {
		report("ListServices = %+v", got)
	}
	if got, err := f.ListNodes(svcA); err != nil || !reflect.DeepEqual(got, []Node{nd}) {
		report("ListNodes = %+v, %v; want [%+v]", got, err, nd)
	}
	if got, err := f.GetNode(svcA, nd.ID); err != nil || got != nd {
		report("GetNode = %+v, %v; want %+v", got, err, nd)
	}
	if u, err := f.GetUser(svcA, "a@x"); err == nil {
		report("GetUser found %+v before the command was published", u)
	}
	if rs, err := f.Records(svcA, "a@x"); err == nil {
		report("Records found %+v before the command was published", rs)
	}
	if rs, err := f.OldRecords(OldRecordsQuery{Service: svcA, Now: lastTS + 10, GraceMs: 1}); err != nil || len(rs) != 0 {
		report("OldRecords = %+v, %v", rs, err)
	}
	if n, err := f.CountUsers("", math.MaxInt64); err != nil || n != 0 {
		report("CountUsers = %d, %v; want 0", n, err)
	}
	if st, err := f.Stats(svcA); err != nil || st != (Stats{Nodes: 1}) {
		report("Stats = %+v, %v; want 1 node and nothing else", st, err)
	}
	return bad
}

func mustOK(t testing.TB, f *FSM, cmd Command) Result {
	t.Helper()
	res := f.Apply(cmd)
	if res.Err != nil {
		t.Fatalf("%+v: %v", cmd, res.Err)
	}
	return res
}

// TestBatchIsPublishedOnce stops the writer after each command of a batch
// and checks readers still see the state before the batch; afterwards
// they see all of it.
func TestBatchIsPublishedOnce(t *testing.T) {
	f := New(Options{})
	mustOK(t, f, Command{Op: OpPutService, TS: t0, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	mustOK(t, f, Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: "https://n1", Capacity: SomeInt64(10)})
	published := f.View()
	var seenAfter []int64
	f.afterCommandHook = func() {
		seenAfter = append(seenAfter, f.st.lastTS)
		if f.View() != published {
			t.Errorf("a view was published after command %d of the batch", len(seenAfter))
		}
		for _, email := range []string{"a@x", "b@x"} {
			if _, err := f.GetUser(svcA, email); err == nil {
				t.Errorf("after command %d of the batch, a reader sees %s", len(seenAfter), email)
			}
		}
	}
	batch := []Command{
		{Op: OpAllocate, TS: t0 + 1, Service: svcA, Email: "a@x"},
		{Op: OpAllocate, TS: t0 + 2, Service: svcA, Email: "b@x"},
	}
	res := f.ApplyBatch(batch)
	f.afterCommandHook = nil
	if !reflect.DeepEqual(seenAfter, []int64{t0 + 1, t0 + 2}) {
		t.Fatalf("hook saw last ts %v, want one run per command", seenAfter)
	}
	for i, r := range res {
		if r.Err != nil || !r.Created {
			t.Fatalf("batch result %d: %+v", i, r)
		}
	}
	for _, email := range []string{"a@x", "b@x"} {
		if _, err := f.GetUser(svcA, email); err != nil {
			t.Fatalf("after the batch: %v", err)
		}
	}
	if msg := viewMismatch(f); msg != "" {
		t.Fatal(msg)
	}
	if got := f.ApplyBatch(nil); len(got) != 0 {
		t.Fatalf("empty batch: %+v", got)
	}
}

// TestConcurrentReadersNeverSeeHalfABatch: every batch allocates a pair
// of users; a reader looking at one View must find both or neither.
func TestConcurrentReadersNeverSeeHalfABatch(t *testing.T) {
	const pairs = 300
	f := New(Options{})
	mustOK(t, f, Command{Op: OpPutService, TS: t0, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	mustOK(t, f, Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: "https://n1", Capacity: SomeInt64(1 << 30)})
	pairEmails := func(i int) (string, string) {
		return "a" + strconv.Itoa(i) + "@x", "b" + strconv.Itoa(i) + "@x"
	}
	var writerDone atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// At least some views, then until the writer is through.
			for n := 0; n < 50 || !writerDone.Load(); n++ {
				v := f.View()
				st, err := v.Stats(svcA)
				if err != nil {
					errs <- err
					return
				}
				if st.Users%2 != 0 {
					errs <- fmt.Errorf("view holds %d users: half a batch is visible", st.Users)
					return
				}
				for i := 0; i < pairs; i++ {
					a, b := pairEmails(i)
					_, errA := v.GetUser(svcA, a)
					_, errB := v.GetUser(svcA, b)
					if (errA == nil) != (errB == nil) {
						errs <- fmt.Errorf("pair %d half visible: %s %v, %s %v", i, a, errA, b, errB)
						return
					}
				}
			}
		}()
	}
	for i := 0; i < pairs; i++ {
		a, b := pairEmails(i)
		for k, res := range f.ApplyBatch([]Command{
			{Op: OpAllocate, TS: t0 + int64(i), Service: svcA, Email: a},
			{Op: OpAllocate, TS: t0 + int64(i), Service: svcA, Email: b},
		}) {
			if res.Err != nil {
				t.Fatalf("pair %d command %d: %v", i, k, res.Err)
			}
		}
	}
	writerDone.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestConcurrentReadersSeeConsistentViews runs readers over every Reader
// method while a writer mixes Apply and ApplyBatch and another goroutine
// takes snapshots and forks. Each reader checks, on one View, facts that
// only hold of a whole state: the nodes' loads add up to the stored
// records, per-user records add up to the counters, each user has at most
// one live record and it is the current one, and the old-records listing
// matches the users' records. (Run with -race.)
func TestConcurrentReadersSeeConsistentViews(t *testing.T) {
	const emails = 30
	const steps = 1200
	f := New(Options{})
	mustOK(t, f, Command{Op: OpPutService, TS: t0, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	for _, url := range []string{"https://n1", "https://n2", "https://n3"} {
		mustOK(t, f, Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: url, Capacity: SomeInt64(1 << 30)})
	}
	email := func(i int) string { return "u" + strconv.Itoa(i%emails) + "@x" }

	var writerDone atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	views := make([]atomic.Int64, 2)
	for r := range views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lastTS := int64(math.MinInt64)
			for n := 0; n < 20 || !writerDone.Load(); n++ {
				v := f.View()
				if v.LastTS() < lastTS {
					errs <- fmt.Errorf("last ts went back from %d to %d", lastTS, v.LastTS())
					return
				}
				lastTS = v.LastTS()
				if bad := viewViolations(v, emails, email); len(bad) > 0 {
					errs <- fmt.Errorf("view at ts %d: %v", v.LastTS(), bad)
					return
				}
				// The FSM's own methods, each on whatever view is current.
				if u, err := f.GetUser(svcA, email(n)); err == nil && u.Email != email(n) {
					errs <- fmt.Errorf("GetUser(%s) returned %s", email(n), u.Email)
					return
				}
				if nodes, err := f.ListNodes(svcA); err != nil || len(nodes) != 3 {
					errs <- fmt.Errorf("ListNodes = %+v, %v", nodes, err)
					return
				}
				views[r].Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; n < 3 || !writerDone.Load(); n++ {
			if err := restoredSnapshotHolds(f); err != nil {
				errs <- err
				return
			}
			fork := f.Fork()
			fork.Apply(Command{Op: OpAllocate, TS: t0, Service: svcA, Email: "fork-only@x"})
			if _, err := f.GetUser(svcA, "fork-only@x"); err == nil {
				errs <- fmt.Errorf("a write to a fork is visible in the original")
				return
			}
		}
	}()

	var batch []Command
	for i := 0; i < steps; i++ {
		ts := t0 + int64(i)
		var cmd Command
		switch i % 6 {
		case 0, 1:
			cmd = Command{Op: OpAllocate, TS: ts, Service: svcA, Email: email(i * 7)}
		case 2:
			cmd = Command{Op: OpUpdateUser, TS: ts, Service: svcA, Email: email(i * 7), ClientState: SomeString(strconv.Itoa(i))}
		case 3:
			cmd = Command{Op: OpReplace, TS: ts, Service: svcA, Email: email(i * 7)}
		case 4:
			old, err := f.OldRecords(OldRecordsQuery{Service: svcA, Now: ts + 1000, GraceMs: 1, Limit: 1})
			if err != nil || len(old) == 0 {
				continue
			}
			cmd = Command{Op: OpDeleteRecord, TS: ts, Service: svcA, UID: old[0].UID}
		case 5:
			cmd = Command{Op: OpUpdateNode, TS: ts, Service: svcA, NodeID: 3, Backoff: SomeBool(i%12 == 5)}
		}
		// Batches of 1–7 commands, every fifth command on its own.
		if i%5 == 0 {
			f.Apply(cmd)
			continue
		}
		batch = append(batch, cmd)
		if len(batch) == 1+i%7 {
			f.ApplyBatch(batch)
			batch = batch[:0]
		}
	}
	f.ApplyBatch(batch)
	writerDone.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st, err := f.Stats(svcA); err != nil || st.Records == 0 {
		t.Fatalf("the writer stored nothing: %+v, %v", st, err)
	}
	if bad := viewViolations(f.View(), emails, email); len(bad) > 0 {
		t.Fatalf("final view: %v", bad)
	}
	t.Logf("views checked per reader: %d, %d", views[0].Load(), views[1].Load())
}

// viewViolations checks, within one View of service svcA (no hand-set
// loads, no removed nodes), what a half-applied command would break.
func viewViolations(v *View, emails int, email func(int) string) []string {
	var bad []string
	report := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	st, err := v.Stats(svcA)
	if err != nil {
		return []string{err.Error()}
	}
	nodes, err := v.ListNodes(svcA)
	if err != nil {
		return []string{err.Error()}
	}
	var load int64
	for _, nd := range nodes {
		load += nd.CurrentLoad
		if got, err := v.GetNode(svcA, nd.ID); err != nil || got != nd {
			report("GetNode(%d) = %+v, %v; ListNodes has %+v", nd.ID, got, err, nd)
		}
	}
	if load != st.Records || st.Nodes != int64(len(nodes)) {
		report("nodes carry %d records, Stats %+v, %d nodes listed", load, st, len(nodes))
	}
	var live, stored, old int64
	cutoff := v.LastTS()
	for i := 0; i < emails; i++ {
		rs, err := v.Records(svcA, email(i))
		if err != nil {
			continue
		}
		u, err := v.GetUser(svcA, email(i))
		if err != nil || u.Record != rs[len(rs)-1] {
			report("GetUser(%s) = %+v, %v; records %+v", email(i), u.Record, err, rs)
		}
		for k, r := range rs {
			stored++
			if r.ReplacedAt == Null {
				live++
				if k != len(rs)-1 {
					report("%s: live record %d is not the current one", email(i), r.UID)
				}
			} else if r.ReplacedAt < cutoff {
				old++
			}
		}
	}
	if live != st.Users || stored != st.Records {
		report("users' records: %d live, %d stored; Stats %+v", live, stored, st)
	}
	if n, err := v.CountUsers(svcA, math.MaxInt64); err != nil || n != st.Users {
		report("CountUsers = %d, %v; Stats %+v", n, err, st)
	}
	if n, err := v.CountUsers("", math.MaxInt64); err != nil || n != st.Users {
		report("CountUsers(all) = %d, %v; Stats %+v", n, err, st)
	}
	rs, err := v.OldRecords(OldRecordsQuery{Service: svcA, Now: cutoff + 1, GraceMs: 1, Limit: math.MaxInt32})
	if err != nil || int64(len(rs)) != old {
		report("OldRecords lists %d, %v; users hold %d replaced before %d", len(rs), err, old, cutoff)
	}
	if svcs := v.ListServices(); len(svcs) != 1 {
		report("ListServices = %+v", svcs)
	} else if sv, err := v.GetService(svcA); err != nil || sv != svcs[0] {
		report("GetService = %+v, %v; listed %+v", sv, err, svcs[0])
	}
	return bad
}

// TestViewNeverChanges keeps an early View while the writer rewrites the
// users it holds, and checks the View still encodes exactly as it did.
func TestViewNeverChanges(t *testing.T) {
	f := New(Options{})
	mustOK(t, f, Command{Op: OpPutService, TS: t0, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	n1 := mustOK(t, f, Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: "https://n1", Capacity: SomeInt64(1000)}).Node
	for i := 0; i < 200; i++ {
		mustOK(t, f, Command{Op: OpAllocate, TS: t0 + 1, Service: svcA, Email: "u" + strconv.Itoa(i) + "@x"})
	}
	early := f.View()
	encode := func(v *View) []byte {
		var buf bytes.Buffer
		if _, err := v.st.writeSnapshot(&buf, false); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	want := encode(early)
	wantUser, _ := early.GetUser(svcA, "u7@x")
	for i := 0; i < 200; i++ {
		e := "u" + strconv.Itoa(i) + "@x"
		f.ApplyBatch([]Command{
			{Op: OpUpdateUser, TS: t0 + 2, Service: svcA, Email: e, ClientState: SomeString("aa")},
			{Op: OpAllocate, TS: t0 + 2, Service: svcA, Email: "new" + e},
		})
	}
	mustOK(t, f, Command{Op: OpUpdateNode, TS: t0 + 3, Service: svcA, NodeID: n1.ID, Downed: SomeBool(true)})
	mustOK(t, f, Command{Op: OpUnassignNode, TS: t0 + 4, Service: svcA, NodeID: n1.ID})
	if !bytes.Equal(encode(early), want) {
		t.Fatal("a published view changed after later writes")
	}
	if got, _ := early.GetUser(svcA, "u7@x"); !reflect.DeepEqual(got, wantUser) {
		t.Fatalf("early view's user changed: %+v, was %+v", got, wantUser)
	}
	if st, _ := early.Stats(svcA); st != (Stats{Users: 200, Records: 200, Nodes: 1}) {
		t.Fatalf("early view's stats changed: %+v", st)
	}
	if got, _ := f.GetUser(svcA, "u7@x"); got.ReplacedAt == Null || got.ClientState != "aa" {
		t.Fatalf("latest view misses the writes: %+v", got)
	}
}

// TestPropertyApplyBatchEqualsApply: any log split into batches gives the
// same results and the same state as applying it command by command, the
// published view matches the writer after every batch, and the caller's
// commands are left as they were.
func TestPropertyApplyBatchEqualsApply(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := &cmdGen{ts: t0}
		log := setupCommands(t)
		for i := range log {
			log[i].TS = t0
		}
		for i, n := 0, rapid.IntRange(1, 80).Draw(t, "n"); i < n; i++ {
			log = append(log, g.draw(t))
		}
		one, batched := New(Options{}), New(Options{})
		for i := 0; i < len(log); {
			size := min(rapid.IntRange(1, 10).Draw(t, "batch"), len(log)-i)
			batch := log[i : i+size]
			kept := append([]Command(nil), batch...)
			got := batched.ApplyBatch(batch)
			if !reflect.DeepEqual(batch, kept) {
				t.Fatalf("ApplyBatch changed its input")
			}
			for k := range batch {
				if want := one.Apply(batch[k]); !reflect.DeepEqual(got[k], want) {
					t.Fatalf("command %d %+v: batched %+v, one by one %+v", i+k, batch[k], got[k], want)
				}
			}
			if msg := viewMismatch(batched); msg != "" {
				t.Fatalf("after batch ending at %d: %s", i+size, msg)
			}
			i += size
		}
		if !batched.Equal(one) {
			t.Fatal("batched and one-by-one states differ")
		}
		for _, v := range readViolations(batched) {
			t.Errorf("read: %s", v)
		}
		if batched.LastTS() != one.LastTS() {
			t.Fatalf("last ts %d vs %d", batched.LastTS(), one.LastTS())
		}
	})
}

// TestRestorePublishes: readers see a restored state at once.
func TestRestorePublishes(t *testing.T) {
	src := New(Options{})
	mustOK(t, src, Command{Op: OpPutService, TS: t0, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	mustOK(t, src, Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: "https://n1", Capacity: SomeInt64(10)})
	mustOK(t, src, Command{Op: OpAllocate, TS: t0 + 9, Service: svcA, Email: "a@x"})
	var buf bytes.Buffer
	if _, err := src.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap := buf.Bytes()
	dst := New(Options{})
	if err := dst.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if u, err := dst.GetUser(svcA, "a@x"); err != nil || u.Email != "a@x" {
		t.Fatalf("GetUser after Restore: %+v, %v", u, err)
	}
	if dst.LastTS() != t0+9 {
		t.Fatalf("LastTS after Restore = %d", dst.LastTS())
	}
	if msg := viewMismatch(dst); msg != "" {
		t.Fatal(msg)
	}
	// A failed restore publishes nothing new.
	v := dst.View()
	if err := dst.Restore(bytes.NewReader(snap[:len(snap)-1])); err == nil {
		t.Fatal("restore of a truncated snapshot succeeded")
	}
	if dst.View() != v {
		t.Fatal("a failed Restore published a view")
	}
}
