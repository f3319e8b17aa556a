package fsm

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// observeImport: imported nodes may hold more than their capacity (the
// source decided), their loads are recomputed (invariant 3 holds again)
// and imported generations are the source's, which may be lower than
// what this state had (invariant 6 restarts for those users).
func (tr *tracker) observeImport(b *ImportBatch) {
	for _, n := range b.Nodes {
		tr.mayExceed[n.ID] = true
		delete(tr.handLoad, n.ID)
	}
	for _, r := range b.Records {
		tr.mayExceed[r.NodeID] = true
		for k := range tr.lastKeys {
			if k.email == r.Email {
				delete(tr.lastKeys, k)
			}
		}
	}
}

func importCmd(b ImportBatch) Command { return Command{Op: OpImport, Import: &b} }

func importRec(uid int64, svc, email string, node, created, replaced int64) ImportRecord {
	return ImportRecord{UID: uid, Service: svc, Email: email, NodeID: node, Generation: 7, KeysChangedAt: Null,
		ClientState: "aa", CreatedAt: created, ReplacedAt: replaced}
}

func domainBytes(t tb, f *FSM) []byte {
	var b bytes.Buffer
	if _, err := f.st.writeSnapshot(&b, false); err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b.Bytes()
}

func sampleBatch() ImportBatch {
	return ImportBatch{
		Services: []ImportService{{ID: 3, Name: "sync-1.5", Pattern: testPattern}},
		Nodes: []ImportNode{
			{ID: 10, Service: "sync-1.5", URL: "https://a", Capacity: 100, Available: 5},
			{ID: 12, Service: "sync-1.5", URL: "https://b", Capacity: 1, Available: 0, Downed: true, Backoff: true},
		},
		Records: []ImportRecord{
			importRec(100, "sync-1.5", "u1@x", 10, t0-5000, t0-4000),
			importRec(105, "sync-1.5", "u1@x", 12, t0-4000, Null),
			importRec(107, "sync-1.5", "u2@x", 12, t0-3000, Null),
			importRec(110, "sync-1.5", "u3@x", 11, t0-2000, t0-1000), // node 11 was removed
		},
	}
}

func TestImportKeepsIDsUIDsAndRecomputesLoads(t *testing.T) {
	h := newHarness(t, Options{})
	res := h.ok(importCmd(sampleBatch()))
	want := ImportCounts{Services: ImportCount{Created: 1}, Nodes: ImportCount{Created: 2}, Records: ImportCount{Created: 4}}
	if *res.Import != want {
		t.Fatalf("counts %+v, want %+v", *res.Import, want)
	}
	u := h.user("sync-1.5", "u1@x")
	if u.UID != 105 || u.NodeURL != "https://b" || u.CreatedAt != t0-4000 || u.FirstSeenAt != t0-5000 || u.Generation != 7 {
		t.Fatalf("user %+v", u)
	}
	if u.APIEndpoint != "https://b/1.5/105" {
		t.Fatalf("endpoint %q", u.APIEndpoint)
	}
	if rs := h.records("sync-1.5", "u3@x"); len(rs) != 1 || rs[0].NodeURL != "" || rs[0].NodeID != 11 {
		t.Fatalf("record on a removed node: %+v", rs)
	}
	if a, b := h.getNode("sync-1.5", 10), h.getNode("sync-1.5", 12); a.CurrentLoad != 1 || b.CurrentLoad != 2 || !b.Downed || !b.Backoff || b.Capacity != 1 {
		t.Fatalf("nodes %+v %+v", a, b)
	}
	// Ids handed out afterwards are above every imported one.
	h.tick(1000)
	nu := h.ok(allocate("sync-1.5", "new@x")).User
	if nu.UID != 111 || nu.NodeID != 10 {
		t.Fatalf("new user %+v", nu)
	}
	if nd := h.node("sync-1.5", "https://c", 10); nd.ID != 13 {
		t.Fatalf("new node id %d", nd.ID)
	}
	if sv := h.ok(Command{Op: OpPutService, Service: "sync-1.1", Pattern: SomeString(testPattern)}).Service; sv.ID != 4 {
		t.Fatalf("new service id %d", sv.ID)
	}
}

func TestImportAgainChangesNothingAndUpdatesByUID(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(importCmd(sampleBatch()))
	before := domainBytes(t, h.f)
	h.tick(10)
	res := h.ok(importCmd(sampleBatch()))
	want := ImportCounts{Services: ImportCount{Unchanged: 1}, Nodes: ImportCount{Unchanged: 2}, Records: ImportCount{Unchanged: 4}}
	if *res.Import != want {
		t.Fatalf("counts %+v, want %+v", *res.Import, want)
	}
	if !bytes.Equal(before, domainBytes(t, h.f)) {
		t.Fatalf("re-importing the same batch changed the state")
	}
	// Catch-up: one record changed (a login bumped the generation, then a
	// new client state replaced it), one new record.
	b := sampleBatch()
	b.Records[2].ReplacedAt = t0 - 100
	b.Records = append(b.Records, importRec(120, "sync-1.5", "u2@x", 10, t0-100, Null))
	b.Records[1].Generation = 9
	res = h.ok(importCmd(b))
	if res.Import.Records != (ImportCount{Created: 1, Updated: 2, Unchanged: 2}) {
		t.Fatalf("catch-up counts %+v", res.Import.Records)
	}
	if u := h.user("sync-1.5", "u2@x"); u.UID != 120 || u.NodeID != 10 || u.FirstSeenAt != t0-3000 {
		t.Fatalf("u2 %+v", u)
	}
	if h.user("sync-1.5", "u1@x").Generation != 9 {
		t.Fatalf("generation not updated")
	}
	if a := h.getNode("sync-1.5", 10); a.CurrentLoad != 2 {
		t.Fatalf("load of node 10: %d", a.CurrentLoad)
	}
	// A record that moved node in the source moves here too.
	b.Records[0].NodeID = 12
	h.ok(importCmd(b))
	if a, c := h.getNode("sync-1.5", 10), h.getNode("sync-1.5", 12); a.CurrentLoad != 1 || c.CurrentLoad != 3 {
		t.Fatalf("loads after a move: %d %d", a.CurrentLoad, c.CurrentLoad)
	}
}

func TestImportRejectsBrokenBatchesWhole(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(importCmd(sampleBatch()))
	svc := "sync-1.5"
	cases := []struct {
		name          string
		batch         ImportBatch
		status, field string
	}{
		{"created_at decreasing in uid (OpImport)", ImportBatch{Records: []ImportRecord{importRec(200, svc, "v@x", 10, t0-6000, Null)}}, StatusBadRequest, "created_at"},
		{"two live records", ImportBatch{Records: []ImportRecord{importRec(200, svc, "v@x", 10, t0, Null), importRec(201, svc, "v@x", 10, t0, Null)}}, StatusBadRequest, "replaced_at"},
		{"uid of another user", ImportBatch{Records: []ImportRecord{importRec(107, svc, "other@x", 10, t0-3000, Null)}}, StatusConflict, "uid"},
		{"service id taken", ImportBatch{Services: []ImportService{{ID: 3, Name: "sync-1.1", Pattern: testPattern}}}, StatusConflict, "service"},
		{"node id taken", ImportBatch{Nodes: []ImportNode{{ID: 12, Service: svc, URL: "https://z", Capacity: 1}}}, StatusConflict, "node"},
		{"node id of removed node's records", ImportBatch{Services: []ImportService{{ID: 4, Name: "sync-1.1", Pattern: testPattern}},
			Nodes: []ImportNode{{ID: 11, Service: "sync-1.1", URL: "https://z", Capacity: 1}}}, StatusConflict, "node"},
		{"duplicate uid in batch", ImportBatch{Records: []ImportRecord{importRec(300, svc, "v@x", 10, t0, t0), importRec(300, svc, "v@x", 10, t0, t0)}}, StatusBadRequest, "uid"},
		{"bad client state", ImportBatch{Records: []ImportRecord{{UID: 300, Service: svc, Email: "v@x", NodeID: 10, ClientState: "!", KeysChangedAt: Null, ReplacedAt: Null, CreatedAt: t0}}}, StatusBadRequest, "client_state"},
		{"unknown service", ImportBatch{Records: []ImportRecord{importRec(300, "nope-1", "v@x", 10, t0, Null)}}, StatusNotFound, "service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			before := domainBytes(t, h.f)
			h.fails(importCmd(c.batch), c.status, c.field)
			if !bytes.Equal(before, domainBytes(t, h.f)) {
				t.Fatalf("a rejected batch changed the state")
			}
		})
	}
}

func TestImportCommandCodec(t *testing.T) {
	cmd := importCmd(sampleBatch())
	cmd.TS, cmd.Seed = t0, 42
	enc := EncodeCommand(cmd)
	if enc[0] != commandFormatV2 {
		t.Fatalf("format %d, want 2", enc[0])
	}
	back, err := DecodeCommand(enc)
	if err != nil || !reflect.DeepEqual(back, cmd) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, cmd)
	}
	// Every truncation is an error, never a panic.
	for i := 0; i < len(enc); i++ {
		if _, err := DecodeCommand(enc[:i]); err == nil {
			t.Fatalf("truncated at %d decoded", i)
		}
	}
	// Format 1 has no import field: the bit is rejected there.
	bad := append([]byte{}, enc...)
	bad[0] = commandFormatV1
	if _, err := DecodeCommand(bad); err == nil {
		t.Fatalf("format 1 accepted an import")
	}
	// Commands without an import still encode as format 1.
	if EncodeCommand(allocate("sync-1.5", "a@x"))[0] != commandFormatV1 {
		t.Fatalf("plain command not format 1")
	}
	r := Result{Import: &ImportCounts{Records: ImportCount{Created: 3, Updated: 2, Unchanged: 1}}}
	if b := EncodeResult(r); b[0] != resultFormatV2 {
		t.Fatalf("result format %d", b[0])
	} else if back, err := DecodeResult(b); err != nil || !reflect.DeepEqual(back, r) {
		t.Fatalf("result round trip %v %+v", err, back)
	}
}

// drawImport draws a batch over a small set of uids, users and nodes so
// that batches collide with each other and with the state: some are
// invalid (and must change nothing), most upsert.
func drawImport(t *rapid.T, created int64) ImportBatch {
	var b ImportBatch
	b.Services = []ImportService{{ID: 1, Name: propServices[0], Pattern: testPattern}}
	for id := int64(1); id <= 4; id++ {
		if !rapid.Bool().Draw(t, "import-node") {
			continue
		}
		b.Nodes = append(b.Nodes, ImportNode{ID: id, Service: propServices[0], URL: propNodes[(id-1)%int64(len(propNodes))],
			Capacity: rapid.Int64Range(0, 5).Draw(t, "import-cap"), Available: rapid.Int64Range(0, 3).Draw(t, "import-avail"),
			Downed: rapid.Bool().Draw(t, "import-downed"), Backoff: rapid.Bool().Draw(t, "import-backoff")})
	}
	uid := int64(0)
	for i, n := 0, rapid.IntRange(0, 8).Draw(t, "import-records"); i < n; i++ {
		uid += rapid.Int64Range(1, 3).Draw(t, "import-uid-step")
		r := ImportRecord{UID: uid, Service: propServices[0], Email: rapid.SampledFrom(propEmails).Draw(t, "import-email"),
			NodeID: rapid.Int64Range(1, 5).Draw(t, "import-node"), Generation: rapid.SampledFrom(propGenerations).Draw(t, "import-gen"),
			KeysChangedAt: Null, ClientState: rapid.SampledFrom(propClientStates).Draw(t, "import-cs"),
			CreatedAt: created + uid*10, ReplacedAt: Null}
		if rapid.Bool().Draw(t, "import-kca") {
			r.KeysChangedAt = rapid.Int64Range(0, 20).Draw(t, "import-kca-v")
		}
		if rapid.IntRange(0, 2).Draw(t, "import-replaced") > 0 {
			r.ReplacedAt = r.CreatedAt + rapid.Int64Range(0, 50).Draw(t, "import-replaced-v")
		}
		b.Records = append(b.Records, r)
	}
	return b
}

func TestPropertyImportKeepsInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := newHarness(t, Options{})
		g := &cmdGen{ts: t0}
		// Imports come first (their uids are low and their times old), then
		// the state lives on under random commands, then the source is
		// imported again (a catch-up run over the same uids).
		for i, n := 0, rapid.IntRange(1, 4).Draw(t, "imports"); i < n; i++ {
			b := drawImport(t, t0-100_000)
			res := h.apply(importCmd(b))
			if res.Err != nil {
				continue
			}
			before := domainBytes(t, h.f)
			again := h.apply(importCmd(b))
			if again.Err != nil || again.Import.Records.Created+again.Import.Records.Updated != 0 ||
				again.Import.Nodes.Created+again.Import.Nodes.Updated != 0 || !bytes.Equal(before, domainBytes(t, h.f)) {
				t.Fatalf("re-importing changed something: %+v %v", again.Import, again.Err)
			}
		}
		for i, n := 0, rapid.IntRange(0, 40).Draw(t, "steps"); i < n; i++ {
			cmd := g.draw(t)
			if cmd.TS < t0 {
				cmd.TS = t0
			}
			h.apply(cmd)
		}
		h.apply(importCmd(drawImport(t, t0-100_000)))

		var buf bytes.Buffer
		if _, err := h.f.Snapshot().WriteTo(&buf); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		restored := New(Options{})
		if err := restored.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("restore after imports: %v", err)
		}
		if !restored.Equal(h.f) {
			t.Fatalf("restored state differs")
		}
	})
}

// testdata/import_command_v2.bin is the format-2 encoding of goldenImport:
// a later binary must keep decoding it to exactly this command, and
// applying it must keep giving the same state (a member replaying an old
// log agrees with one that restored a newer snapshot).
func goldenImport() Command {
	cmd := importCmd(sampleBatch())
	cmd.TS, cmd.Seed = t0, 7
	return cmd
}

func TestGoldenImportV2(t *testing.T) {
	path := "testdata/import_command_v2.bin"
	if *updateGolden {
		if err := os.WriteFile(path, EncodeCommand(goldenImport()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	cmd, err := DecodeCommand(b)
	if err != nil || !reflect.DeepEqual(cmd, goldenImport()) {
		t.Fatalf("fixture decodes to %+v (%v)", cmd, err)
	}
	if !bytes.Equal(EncodeCommand(goldenImport()), b) {
		t.Fatalf("format 2 encoding changed while it is current")
	}
	f := New(Options{})
	res := f.Apply(cmd)
	if res.Err != nil || res.Import.Records.Created != 4 {
		t.Fatalf("applying the fixture: %+v %v", res.Import, res.Err)
	}
	if st, err := f.Stats("sync-1.5"); err != nil || st.Records != 4 || st.Users != 2 {
		t.Fatalf("stats after the fixture: %+v %v", st, err)
	}
}

func FuzzDecodeImportCommand(f *testing.F) {
	f.Add(EncodeCommand(goldenImport()))
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, ok := decodeRoundTrip(t, b)
		if !ok {
			return
		}
		// Whatever decodes applies without panicking and, if it fails,
		// changes nothing.
		f := New(Options{})
		f.Apply(importCmd(sampleBatch()))
		before := f.Fork()
		if res := f.Apply(cmd); res.Err != nil && !domainEqual(before, f) {
			t.Fatalf("failing command changed the state")
		}
	})
}

// OpImportKeepTimes keeps imported times exactly as the source holds
// them, even when created_at goes down as uids grow; reads, snapshots and
// records created afterwards stay correct. (OpImport refuses such a
// batch: TestImportRejectsBrokenBatchesWhole.)
func TestImportKeepsCreatedAtOutOfUIDOrder(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(importCmd(sampleBatch()))
	// uid 200 was created (in the source) before every other record.
	keep := importCmd(ImportBatch{Records: []ImportRecord{importRec(200, "sync-1.5", "v@x", 10, t0-6000, Null)}})
	keep.Op = OpImportKeepTimes
	h.ok(keep)
	if u := h.user("sync-1.5", "v@x"); u.CreatedAt != t0-6000 || u.FirstSeenAt != t0-6000 {
		t.Fatalf("user %+v: created_at changed", u)
	}
	// Live records created at or before each time: v@x (t0-6000), u1@x's
	// uid 105 (t0-4000), u2@x (t0-3000).
	for asOf, want := range map[int64]int64{t0 - 6001: 0, t0 - 6000: 1, t0 - 4000: 2, t0 - 3000: 3, t0 + 1: 3} {
		if n, err := h.f.CountUsers("sync-1.5", asOf); err != nil || n != want {
			t.Errorf("CountUsers(asOf %d) = %d, %v; want %d", asOf-t0, n, err, want)
		}
	}
	// A snapshot of this state restores.
	var buf bytes.Buffer
	if _, err := h.f.st.writeSnapshot(&buf, true); err != nil {
		t.Fatal(err)
	}
	g := New(Options{})
	if err := g.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(domainBytes(t, g), domainBytes(t, h.f)) {
		t.Fatalf("restored state differs")
	}
	// A new user gets a uid above every imported one, created now.
	h.tick(10)
	res := h.ok(allocate("sync-1.5", "new@x"))
	if res.User.UID <= 200 || res.User.CreatedAt < t0 {
		t.Fatalf("new record %+v", res.User.Record)
	}
}

// A user whose generation went down in the source (a newer record below
// an older one) is kept so by OpImportKeepTimes; sign-ins compare with the
// current record, as Mozilla's server does. OpImport refuses the batch.
func TestImportKeepsGenerationsAsGiven(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(importCmd(sampleBatch()))
	older := importRec(300, "sync-1.5", "g@x", 10, t0-500, t0-400)
	older.Generation = 50
	newer := importRec(301, "sync-1.5", "g@x", 10, t0-400, Null)
	newer.Generation = 20
	b := ImportBatch{Records: []ImportRecord{older, newer}}
	h.fails(importCmd(b), StatusBadRequest, "generation")
	keep := importCmd(b)
	keep.Op = OpImportKeepTimes
	h.ok(keep)
	rs := h.records("sync-1.5", "g@x")
	if len(rs) != 2 || rs[0].Generation != 50 || rs[1].Generation != 20 {
		t.Fatalf("records %+v", rs)
	}
	// The current record decides: generation 30 is above its 20.
	login := Command{Op: OpLogin, Service: "sync-1.5", Email: "g@x", Generation: SomeInt64(30), ClientState: SomeString("aa")}
	if res := h.ok(login); res.User.UID != 301 || res.User.Generation != 30 {
		t.Fatalf("login %+v", res.User)
	}
}
