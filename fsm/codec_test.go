package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite fsm/testdata golden fixtures (only when adding a new format version)")

// goldenCommands is the log the v1 fixtures were written from. Never edit
// it: testdata/commands_v1.bin must keep decoding to exactly this, and
// testdata/snapshot_v1.bin must keep equalling the state it produces.
func goldenCommands() []Command {
	return []Command{
		{Op: OpNoop, TS: t0},
		{Op: OpPutService, TS: t0 + 1, Service: "sync-1.5", Pattern: SomeString("{node}/1.5/{uid}"), ReleaseRate: SomeString("0.5"), AllowNewUsers: SomeBool(true), Spread: SomeInt64(2)},
		{Op: OpPutService, TS: t0 + 2, Service: "sync-1.1", Pattern: SomeString("{node}/1.1/{uid}")},
		{Op: OpAddNode, TS: t0 + 3, Service: "sync-1.5", NodeURL: "https://n1.example", Capacity: SomeInt64(100)},
		{Op: OpAddNode, TS: t0 + 4, Service: "sync-1.5", NodeURL: "https://n2.example", Capacity: SomeInt64(50), Available: SomeInt64(5), CurrentLoad: SomeInt64(0), Downed: SomeBool(false), Backoff: SomeBool(false)},
		{Op: OpAddNode, TS: t0 + 5, Service: "sync-1.1", NodeURL: "https://old.example", Capacity: SomeInt64(10)},
		{Op: OpUpdateNode, TS: t0 + 6, Service: "sync-1.5", NodeID: 2, Backoff: SomeBool(true)},
		{Op: OpAllocate, TS: t0 + 7, Seed: 7, Service: "sync-1.5", Email: "alice@example.com", Generation: SomeInt64(3), ClientState: SomeString("aabb"), KeysChangedAt: SomeInt64(2)},
		{Op: OpLogin, TS: t0 + 8, Seed: 8, Service: "sync-1.5", Email: "bob@example.com", Generation: SomeInt64(10), KeysChangedAt: SomeInt64(10), ClientState: SomeString("0f0f"), IdempotencyKey: "idem-1", RequestHash: 0xfeedface},
		{Op: OpLogin, TS: t0 + 9, Service: "sync-1.5", Email: "bob@example.com", Generation: SomeInt64(11), KeysChangedAt: SomeInt64(11), ClientState: SomeString("1e1e")},
		{Op: OpAllocate, TS: t0 + 10, Service: "sync-1.1", Email: "alice@example.com", Node: SomeString("https://old.example")},
		{Op: OpUpdateUser, TS: t0 + 11, Service: "sync-1.5", Email: "alice@example.com", Generation: SomeInt64(4)},
		{Op: OpReplace, TS: t0 + 12, Service: "sync-1.1", Email: "alice@example.com", At: SomeInt64(t0 + 11)},
		{Op: OpAllocate, TS: t0 + 13, Service: "sync-1.5", Email: "carol@example.com"},
		{Op: OpRetire, TS: t0 + 14, Service: "sync-1.5", Email: "carol@example.com"},
		{Op: OpAccountEvent, TS: t0 + 15, Email: "alice@example.com", Event: EventPasswordChange, Generation: SomeInt64(20)},
		{Op: OpUnassignNode, TS: t0 + 16, Service: "sync-1.1", NodeID: 3},
		{Op: OpAllocate, TS: t0 + 17, Service: "sync-1.5", Email: "dave@example.com"},
		{Op: OpRemoveNode, TS: t0 + 18, Service: "sync-1.5", NodeID: 1},
		{Op: OpDeleteRecord, TS: t0 + 19, Service: "sync-1.5", UID: 6},
		{Op: OpDeleteService, TS: t0 + 20, Service: "sync-1.1"},
		{Op: OpAllocate, TS: t0 + 21, Service: "sync-1.5", Email: "erin@example.com", IdempotencyKey: "idem-2", RequestHash: 2},
	}
}

func goldenState(t *testing.T) *FSM {
	t.Helper()
	f := New(Options{})
	for i, cmd := range goldenCommands() {
		res := f.Apply(cmd)
		// Two commands fail by design: the service delete (it still has
		// records) and the last allocate (node 1 was removed, node 2 is in
		// backoff).
		if wantErr := i == 20 || i == 21; (res.Err != nil) != wantErr {
			t.Fatalf("golden command %d: %+v", i, res.Err)
		}
	}
	return f
}

func encodeCommandLog(cmds []Command) []byte {
	var out []byte
	for _, c := range cmds {
		b := EncodeCommand(c)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

func decodeCommandLog(t *testing.T, b []byte) []Command {
	t.Helper()
	var out []Command
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			t.Fatalf("corrupt fixture framing")
		}
		cmd, err := DecodeCommand(b[k : k+int(n)])
		if err != nil {
			t.Fatalf("decode fixture command %d: %v", len(out), err)
		}
		out = append(out, cmd)
		b = b[k+int(n):]
	}
	return out
}

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := f.Snapshot().WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// TestGoldenV1 pins format 1: a newer binary must read an older log and
// snapshot. When a format 2 is added, keep these fixtures and this test
// (only the byte-equality of re-encoding moves to the v2 fixtures).
func TestGoldenV1(t *testing.T) {
	cmdPath := filepath.Join("testdata", "commands_v1.bin")
	snapPath := filepath.Join("testdata", "snapshot_v1.bin")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cmdPath, encodeCommandLog(goldenCommands()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapPath, snapshotBytes(t, goldenState(t)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmdFixture, err := os.ReadFile(cmdPath)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if got := decodeCommandLog(t, cmdFixture); !reflect.DeepEqual(got, goldenCommands()) {
		t.Fatalf("v1 log fixture decodes to\n%+v\nwant\n%+v", got, goldenCommands())
	}
	if !bytes.Equal(encodeCommandLog(goldenCommands()), cmdFixture) {
		t.Fatal("the command encoder no longer writes format 1 byte for byte: add a new format instead")
	}

	snapFixture, err := os.ReadFile(snapPath)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	restored := New(Options{})
	if err := restored.Restore(bytes.NewReader(snapFixture)); err != nil {
		t.Fatalf("restore v1 fixture: %v", err)
	}
	// Replaying the v1 log today must give the state the v1 snapshot
	// holds: otherwise a member replaying an old log diverges from one
	// that restored an old snapshot.
	if !restored.Equal(goldenState(t)) {
		t.Fatal("v1 snapshot fixture differs from replaying the v1 log")
	}
	if !bytes.Equal(snapshotBytes(t, restored), snapFixture) {
		t.Fatal("the snapshot writer no longer writes format 1 byte for byte: add a new version instead")
	}
	// Spot checks on the restored state, so the fixture is known to hold
	// something real.
	bob, err := restored.GetUser("sync-1.5", "bob@example.com")
	if err != nil || bob.Generation != 11 || bob.ClientState != "1e1e" || !reflect.DeepEqual(bob.OldClientStates, []string{"0f0f"}) || bob.NodeURL != "" {
		t.Fatalf("bob: %+v %v", bob, err)
	}
	alice, err := restored.GetUser("sync-1.1", "alice@example.com")
	if err != nil || alice.Generation != 19 || alice.ReplacedAt != t0+16 {
		t.Fatalf("alice in sync-1.1: %+v %v", alice, err)
	}
	if carol, err := restored.GetUser("sync-1.5", "carol@example.com"); err != nil || carol.Generation != MaxGeneration {
		t.Fatalf("carol: %+v %v", carol, err)
	}
	if restored.LastTS() != t0+21 {
		t.Fatalf("last ts %d", restored.LastTS())
	}
	// The idempotency table survived: a retry returns the first answer.
	retry := goldenCommands()[8]
	retry.TS = t0 + 100
	if res := restored.Apply(retry); !res.Repeated || res.User == nil || res.User.Email != "bob@example.com" || res.FxaKid != "0000000000010-Dw8" {
		t.Fatalf("idempotent retry after restore: %+v", res)
	}
}

func TestDecodeCommandRejectsGarbage(t *testing.T) {
	valid := EncodeCommand(Command{Op: OpLogin, TS: 5, Service: "sync-1.5", Email: "a@x", Generation: SomeInt64(3), Downed: SomeBool(true)})
	cases := map[string][]byte{
		"empty":           nil,
		"unknown format":  {9, byte(OpNoop), 0},
		"op zero":         {commandFormatV1, 0, 0},
		"unknown op":      {commandFormatV1, byte(opMax) + 1, 0},
		"unknown bit":     binary.AppendUvarint([]byte{commandFormatV1, byte(OpNoop)}, 1<<cbCount),
		"trailing":        append(append([]byte{}, valid...), 0),
		"string too long": append(binary.AppendUvarint([]byte{commandFormatV1, byte(OpNoop)}, 1<<cbService), 200, 1, 'a'),
		"bad bool":        append(binary.AppendUvarint([]byte{commandFormatV1, byte(OpNoop)}, 1<<cbDowned), 2),
		"overlong varint": append(binary.AppendUvarint([]byte{commandFormatV1, byte(OpNoop)}, 1<<cbTS), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for name, b := range cases {
		if _, err := DecodeCommand(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: err %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestDecodeResultRejectsGarbage(t *testing.T) {
	valid := EncodeResult(Result{User: &User{OldClientStates: []string{"a", "b"}}, Count: 3})
	for i := 0; i < len(valid); i++ {
		if _, err := DecodeResult(valid[:i]); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("prefix %d decoded: %v", i, err)
		}
	}
	// A huge old-client-state count must not allocate before failing.
	bad := append(binary.AppendUvarint([]byte{resultFormatV1}, 1<<rbUser), make([]byte, 20)...)
	bad = append(bad[:len(bad)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := DecodeResult(bad); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("huge count: %v", err)
	}
}

func TestRestoreRejectsCorruptionAndKeepsState(t *testing.T) {
	good := snapshotBytes(t, goldenState(t))
	f := New(Options{})
	f.Apply(Command{Op: OpPutService, TS: 1, Service: "keep-1", Pattern: SomeString("p")})
	before := snapshotBytes(t, f)
	check := func(name string, b []byte) {
		t.Helper()
		err := f.Restore(bytes.NewReader(b))
		if !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("%s: err %v, want ErrBadEncoding", name, err)
		}
		if !bytes.Equal(snapshotBytes(t, f), before) {
			t.Fatalf("%s: failed restore changed the state", name)
		}
	}
	for i := 0; i < len(good); i++ {
		check("truncated", good[:i])
	}
	for i := 0; i < len(good); i++ {
		b := append([]byte{}, good...)
		b[i] ^= 0x40
		check("bit flip", b)
	}
	check("trailing byte", append(append([]byte{}, good...), 0))
	// A reader error is reported as such.
	if err := f.Restore(io.MultiReader(bytes.NewReader(good[:10]), errReader{})); err == nil || errors.Is(err, ErrBadEncoding) {
		t.Fatalf("reader error: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// TestRestoreValidatesContent writes snapshots of deliberately broken
// states (with a correct checksum) and expects Restore to refuse each.
func TestRestoreValidatesContent(t *testing.T) {
	breakers := map[string]func(s *state){
		"live record not current": func(s *state) {
			eachUser(s, func(u *user) bool {
				if len(u.recs) > 1 {
					u.recs[0].replacedAt = Null
					return false
				}
				return true
			})
		},
		"uid at or past next":     func(s *state) { s.nextUID = 2 },
		"node id at or past next": func(s *state) { s.nextNodeID = 2 },
		"record on another service's node": func(s *state) {
			eachUser(s, func(u *user) bool {
				if u.svc == 2 {
					u.recs[0].nodeID = 2 // a node of service 1
					return false
				}
				return true
			})
		},
		"duplicate uid across services": func(s *state) {
			eachUser(s, func(u *user) bool {
				if u.svc == 2 {
					u.recs[0].uid = 1
					return false
				}
				return true
			})
		},
		"invalid client state": func(s *state) {
			eachUser(s, func(u *user) bool {
				u.recs[0].clientState = "not valid!"
				return false
			})
		},
		"negative capacity": func(s *state) {
			for _, sv := range s.svcByID {
				if len(sv.nodes) > 0 {
					sv.nodes[0].Capacity = -1
					return
				}
			}
		},
		"created after last ts": func(s *state) { s.lastTS = t0 },
		"bad rate": func(s *state) {
			for _, sv := range s.svcByID {
				sv.ReleaseRate = "2"
			}
		},
	}
	for name, breakState := range breakers {
		f := goldenState(t)
		breakState(f.st)
		var buf bytes.Buffer
		if _, err := f.st.writeSnapshot(&buf, true); err != nil {
			t.Fatal(err)
		}
		if err := New(Options{}).Restore(&buf); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: restore err %v, want ErrBadEncoding", name, err)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range goldenCommands() {
		f.Add(EncodeCommand(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { decodeRoundTrip(t, b) })
}

// decodeRoundTrip decodes b, if it decodes (ok), and checks that the
// command encodes and decodes back to itself.
func decodeRoundTrip(t *testing.T, b []byte) (cmd Command, ok bool) {
	t.Helper()
	cmd, err := DecodeCommand(b)
	if err != nil {
		return Command{}, false
	}
	again, err := DecodeCommand(EncodeCommand(cmd))
	if err != nil || !reflect.DeepEqual(again, cmd) {
		t.Fatalf("decoded command does not round-trip: %+v vs %+v (%v)", cmd, again, err)
	}
	return cmd, true
}

func FuzzRestore(f *testing.F) {
	var buf bytes.Buffer
	fsm := New(Options{})
	for _, c := range goldenCommands() {
		fsm.Apply(c)
	}
	if _, err := fsm.Snapshot().WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		g := New(Options{})
		if err := g.Restore(bytes.NewReader(b)); err != nil {
			return
		}
		// Whatever was accepted is a state this package can write and
		// read back unchanged.
		var out bytes.Buffer
		if _, err := g.Snapshot().WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		h := New(Options{})
		if err := h.Restore(&out); err != nil || !h.Equal(g) {
			t.Fatalf("accepted snapshot does not round-trip: %v", err)
		}
		checkInvariants(t, g, permissiveTracker(g))
	})
}

// eachUser visits users in snapshot order until fn returns false.
func eachUser(s *state, fn func(u *user) bool) {
	for _, sv := range s.servicesByID() {
		goOn := true
		sv.users.Ascend(func(e userEntry) bool {
			goOn = fn(e.u)
			return goOn
		})
		if !goOn {
			return
		}
	}
}
