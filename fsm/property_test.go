package fsm

import (
	"bytes"
	"hash/fnv"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// Random command sequences draw from small sets of services, nodes,
// emails and client states so that commands collide: the same user is
// allocated, updated, unassigned and purged within one sequence.

var (
	propServices     = []string{"sync-1.5", "sync-1.1"}
	propNodes        = []string{"https://n1", "https://n2", "https://n3"}
	propEmails       = []string{"a@x", "b@x", "c@x", "d@x", "e@x"}
	propClientStates = []string{"", "aa", "bb", "cc", "0f"}
	propRates        = []string{"0.1", "0.5", "1", "0.25", "0.07"}
	propGenerations  = []int64{1, 2, 3, 5, 8, 13, MaxGeneration}
	// rapid favours early elements, so the ops that matter most come first.
	propOps = []Op{
		OpAllocate, OpLogin, OpUpdateUser, OpAllocate, OpLogin, OpReplace, OpDeleteRecord, OpLogin, OpAddNode,
		OpRetire, OpUnassignNode, OpUpdateNode, OpRemoveNode, OpAccountEvent, OpPutService, OpDeleteService, OpNoop,
	}
)

// cmdGen draws commands; ts only moves forward mostly, sometimes back
// (a new leader with a slower clock). Idempotency keys come from a tiny
// set and the request hash covers the command's content, as the HTTP
// layer's hash covers the request: retrying the last keyed command
// exercises repeats, a key reused for other content exercises conflicts.
type cmdGen struct {
	ts        int64
	lastKeyed *Command
}

func requestHash(cmd Command) uint64 {
	cmd.TS, cmd.Seed, cmd.IdempotencyKey, cmd.RequestHash = 0, 0, "", 0
	h := fnv.New64a()
	h.Write(EncodeCommand(cmd))
	return h.Sum64()
}

func (g *cmdGen) optInt(t *rapid.T, name string, values []int64) OptInt64 {
	switch rapid.IntRange(0, 9).Draw(t, name+"?") {
	case 0, 1, 2, 3:
		return OptInt64{}
	case 4:
		return SomeInt64(rapid.SampledFrom([]int64{0, -1}).Draw(t, name+"-edge"))
	}
	return SomeInt64(rapid.SampledFrom(values).Draw(t, name))
}

func (g *cmdGen) optBool(t *rapid.T, name string) OptBool {
	if rapid.Bool().Draw(t, name+"?") {
		return SomeBool(rapid.Bool().Draw(t, name))
	}
	return OptBool{}
}

func (g *cmdGen) optString(t *rapid.T, name string, values []string) OptString {
	if rapid.IntRange(0, 3).Draw(t, name+"?") == 0 {
		return OptString{}
	}
	return SomeString(rapid.SampledFrom(values).Draw(t, name))
}

func (g *cmdGen) draw(t *rapid.T) Command {
	g.ts += rapid.Int64Range(-50, 400).Draw(t, "dt")
	if g.lastKeyed != nil && rapid.IntRange(0, 9).Draw(t, "retry?") == 0 {
		retry := *g.lastKeyed
		retry.TS = g.ts
		return retry
	}
	cmd := g.drawFresh(t)
	if rapid.IntRange(0, 9).Draw(t, "idem?") == 0 {
		cmd.IdempotencyKey = rapid.SampledFrom([]string{"k1", "k2", "k3"}).Draw(t, "key")
		cmd.RequestHash = requestHash(cmd)
		keyed := cmd
		g.lastKeyed = &keyed
	}
	return cmd
}

func (g *cmdGen) drawFresh(t *rapid.T) Command {
	cmd := Command{
		Op:      rapid.SampledFrom(propOps).Draw(t, "op"),
		TS:      g.ts,
		Seed:    rapid.Uint64().Draw(t, "seed"),
		Service: rapid.SampledFrom(propServices).Draw(t, "service"),
	}
	small := []int64{0, 1, 2, 3, 5, 10}
	switch cmd.Op {
	case OpPutService:
		if rapid.IntRange(0, 3).Draw(t, "pattern?") != 0 {
			cmd.Pattern = SomeString(rapid.SampledFrom([]string{testPattern, "{service}:{node}:{uid}"}).Draw(t, "pattern"))
		}
		cmd.ReleaseRate = g.optString(t, "rate", propRates)
		cmd.AllowNewUsers = g.optBool(t, "allow")
		cmd.Spread = g.optInt(t, "spread", []int64{1, 2, 3})
	case OpAddNode:
		cmd.NodeURL = rapid.SampledFrom(propNodes).Draw(t, "url")
		cmd.Capacity = g.optInt(t, "capacity", small)
		if rapid.IntRange(0, 3).Draw(t, "capacity-always") != 0 {
			cmd.Capacity = SomeInt64(rapid.SampledFrom(small).Draw(t, "capacity"))
		}
		cmd.Available = g.optInt(t, "available", small)
		if rapid.IntRange(0, 4).Draw(t, "load?") == 0 {
			cmd.CurrentLoad = g.optInt(t, "load", small)
		}
		cmd.Downed = g.optBool(t, "downed")
		if rapid.IntRange(0, 3).Draw(t, "backoff?") == 0 {
			cmd.Backoff = SomeBool(true)
		}
	case OpUpdateNode:
		cmd.NodeID = rapid.Int64Range(1, 8).Draw(t, "node-id")
		cmd.Capacity = g.optInt(t, "capacity", small)
		cmd.Available = g.optInt(t, "available", small)
		if rapid.IntRange(0, 4).Draw(t, "load?") == 0 {
			cmd.CurrentLoad = g.optInt(t, "load", small)
		}
		cmd.Downed = g.optBool(t, "downed")
		cmd.Backoff = g.optBool(t, "backoff")
	case OpUnassignNode, OpRemoveNode:
		cmd.NodeID = rapid.Int64Range(1, 8).Draw(t, "node-id")
	case OpAllocate, OpUpdateUser, OpLogin:
		cmd.Email = rapid.SampledFrom(propEmails).Draw(t, "email")
		cmd.Generation = g.optInt(t, "generation", propGenerations)
		cmd.KeysChangedAt = g.optInt(t, "kca", propGenerations[:6])
		cmd.ClientState = g.optString(t, "client-state", propClientStates)
		if cmd.Op != OpLogin && rapid.IntRange(0, 5).Draw(t, "node?") == 0 {
			cmd.Node = SomeString(rapid.SampledFrom(append(propNodes, "https://nope")).Draw(t, "node"))
		}
	case OpRetire:
		cmd.Email = rapid.SampledFrom(propEmails).Draw(t, "email")
	case OpReplace:
		cmd.Email = rapid.SampledFrom(propEmails).Draw(t, "email")
		if rapid.Bool().Draw(t, "at?") {
			cmd.At = SomeInt64(g.ts + rapid.Int64Range(-500, 100).Draw(t, "at"))
		}
	case OpDeleteRecord:
		cmd.UID = rapid.Int64Range(1, 40).Draw(t, "uid")
	case OpAccountEvent:
		cmd.Service = ""
		cmd.Email = rapid.SampledFrom(propEmails).Draw(t, "email")
		cmd.Event = rapid.SampledFrom([]string{EventDelete, EventReset, EventPasswordChange, "bogus"}).Draw(t, "event")
		cmd.Generation = g.optInt(t, "generation", propGenerations)
	}
	return cmd
}

// setupCommands make the interesting ops reachable quickly.
// setUp sends the setup commands through apply and returns the generator
// of the commands that follow them.
func setUp(t *rapid.T, apply func(Command) Result) *cmdGen {
	g := &cmdGen{ts: t0}
	for _, cmd := range setupCommands(t) {
		cmd.TS = g.ts
		apply(cmd)
	}
	return g
}

// randomMachine is a machine after the setup commands and up to max drawn
// commands, with the generator that drew them.
func randomMachine(t *rapid.T, max int) (*FSM, *cmdGen) {
	f := New(Options{})
	g := setUp(t, f.Apply)
	for i, n := 0, rapid.IntRange(0, max).Draw(t, "before"); i < n; i++ {
		f.Apply(g.draw(t))
	}
	return f, g
}

func setupCommands(t *rapid.T) []Command {
	var out []Command
	for _, svc := range propServices {
		out = append(out, Command{Op: OpPutService, Service: svc, Pattern: SomeString(testPattern),
			ReleaseRate: SomeString(rapid.SampledFrom(propRates).Draw(t, "setup-rate")),
			Spread:      SomeInt64(rapid.Int64Range(1, 3).Draw(t, "setup-spread"))})
		for _, url := range propNodes[:2] {
			out = append(out, Command{Op: OpAddNode, Service: svc, NodeURL: url, Capacity: SomeInt64(rapid.Int64Range(0, 6).Draw(t, "setup-capacity"))})
		}
	}
	return out
}

func TestPropertyInvariantsHold(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := newHarness(t, Options{IdempotencyTTLMs: 2000, IdempotencyMaxEntries: 2})
		g := setUp(t, func(cmd Command) Result { return h.apply(cmd) })
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			h.apply(g.draw(t))
		}
	})
}

func TestPropertySnapshotRestore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f, g := randomMachine(t, 60)
		var buf bytes.Buffer
		if _, err := f.Snapshot().WriteTo(&buf); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		restored := New(Options{})
		if err := restored.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if !restored.Equal(f) {
			t.Fatalf("restored state differs")
		}
		if restored.LastTS() != f.LastTS() {
			t.Fatalf("last ts %d vs %d", restored.LastTS(), f.LastTS())
		}
		checkInvariants(t, restored, permissiveTracker(restored))
		for i, n := 0, rapid.IntRange(1, 40).Draw(t, "after"); i < n; i++ {
			cmd := g.draw(t)
			a, b := f.Apply(cmd), restored.Apply(cmd)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("command %+v: original %+v, restored %+v", cmd, a, b)
			}
		}
		if !restored.Equal(f) {
			t.Fatalf("states diverged after further commands")
		}
	})
}

// permissiveTracker knows nothing of history, so it exempts every node
// from the counting invariants; structural invariants are still checked.
func permissiveTracker(f *FSM) *tracker {
	tr := newTracker()
	for _, sv := range f.st.svcByID {
		for _, nd := range sv.nodes {
			tr.handLoad[nd.ID] = true
			tr.mayExceed[nd.ID] = true
		}
	}
	return tr
}

func TestPropertyForkIsIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f, g := randomMachine(t, 30)
		var want bytes.Buffer
		if _, err := f.Snapshot().WriteTo(&want); err != nil {
			t.Fatal(err)
		}
		snap := f.Snapshot()
		fork := f.Fork()
		for i, n := 0, rapid.IntRange(1, 30).Draw(t, "fork"); i < n; i++ {
			fork.Apply(g.draw(t))
		}
		for i, n := 0, rapid.IntRange(1, 30).Draw(t, "orig"); i < n; i++ {
			f.Apply(g.draw(t))
		}
		// The snapshot taken before either moved still encodes the old state.
		var got bytes.Buffer
		if _, err := snap.WriteTo(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("snapshot changed after later applies")
		}
		checkInvariants(t, f, permissiveTracker(f))
		checkInvariants(t, fork, permissiveTracker(fork))
	})
}

// genCommandAnyFields draws a command with any op and every field but
// Import (the import tests draw batches) at random. Fields are drawn by
// their type, so a field added to Command is drawn too without a change
// here, and the codec round trip catches it if the codec leaves it out.
func genCommandAnyFields(t *rapid.T) Command {
	cmd := Command{Op: Op(rapid.IntRange(int(OpNoop), int(opMax)).Draw(t, "op"))}
	v := reflect.ValueOf(&cmd).Elem()
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "Op" && name != "Import" {
			drawField(t, v.Field(i), name)
		}
	}
	return cmd
}

// drawField sets an int64, uint64, string or bool field at random, and an
// optional one (OptInt64, OptString, OptBool) to absent or a random value.
func drawField(t *rapid.T, f reflect.Value, name string) {
	switch f.Kind() {
	case reflect.Int64:
		f.SetInt(rapid.Int64().Draw(t, name))
	case reflect.Uint64:
		f.SetUint(rapid.Uint64().Draw(t, name))
	case reflect.String:
		f.SetString(rapid.String().Draw(t, name))
	case reflect.Bool:
		f.SetBool(rapid.Bool().Draw(t, name))
	case reflect.Struct:
		if rapid.Bool().Draw(t, name+"?") {
			f.FieldByName("Set").SetBool(true)
			drawField(t, f.FieldByName("V"), name)
		}
	default:
		t.Fatalf("no generator for command field %s of kind %s", name, f.Kind())
	}
}

func TestPropertyCommandCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cmd := genCommandAnyFields(t)
		b := EncodeCommand(cmd)
		back, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(back, cmd) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", back, cmd)
		}
		// Every strict prefix is rejected, never mis-decoded.
		for i := 0; i < len(b); i++ {
			if _, err := DecodeCommand(b[:i]); err == nil {
				t.Fatalf("prefix of %d/%d bytes decoded", i, len(b))
			}
		}
	})
}

func TestPropertyResultCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Results of random commands on a random state.
		f := New(Options{})
		g := setUp(t, f.Apply)
		for i, n := 0, rapid.IntRange(1, 30).Draw(t, "n"); i < n; i++ {
			res := f.Apply(g.draw(t))
			res.Repeated = rapid.Bool().Draw(t, "repeated")
			back, err := DecodeResult(EncodeResult(res))
			if err != nil || !reflect.DeepEqual(back, res) {
				t.Fatalf("round trip %+v -> %+v (%v)", res, back, err)
			}
		}
	})
}

func TestPropertyDeterminism(t *testing.T) {
	// The same log, applied to fresh machines (one of them through the
	// log codec, one restored from a snapshot midway), gives identical
	// answers and byte-identical snapshots; spread > 1 included.
	snapshotOf := func(t *rapid.T, f *FSM) []byte {
		var buf bytes.Buffer
		if _, err := f.Snapshot().WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	rapid.Check(t, func(t *rapid.T) {
		g := &cmdGen{ts: t0}
		log := setupCommands(t)
		log = append(log, Command{Op: OpPutService, Service: propServices[0], Spread: SomeInt64(3)})
		for i := range log {
			log[i].TS = t0
		}
		for i, n := 0, rapid.IntRange(1, 150).Draw(t, "n"); i < n; i++ {
			log = append(log, g.draw(t))
		}
		restoreAt := rapid.IntRange(0, len(log)-1).Draw(t, "restore-at")
		a, b := New(Options{}), New(Options{})
		for i, cmd := range log {
			decoded, err := DecodeCommand(EncodeCommand(cmd))
			if err != nil {
				t.Fatal(err)
			}
			ra, rb := a.Apply(cmd), b.Apply(decoded)
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("command %d %+v: %+v vs %+v", i, cmd, ra, rb)
			}
			if i == restoreAt {
				c := New(Options{})
				if err := c.Restore(bytes.NewReader(snapshotOf(t, b))); err != nil {
					t.Fatal(err)
				}
				b = c
			}
		}
		if !bytes.Equal(snapshotOf(t, a), snapshotOf(t, b)) {
			t.Fatal("same log, different snapshots")
		}
	})
}

// TestPropertyArbitraryCommands feeds commands with arbitrary field values
// (what a corrupt or hostile log entry could carry) between ordinary ones:
// no panic, no broken invariant, and failures change nothing.
func TestPropertyArbitraryCommands(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := newHarness(t, Options{})
		g := setUp(t, func(cmd Command) Result { return h.apply(cmd) })
		for i, n := 0, rapid.IntRange(1, 40).Draw(t, "n"); i < n; i++ {
			if rapid.Bool().Draw(t, "arbitrary?") {
				cmd := genCommandAnyFields(t)
				if rapid.IntRange(0, 3).Draw(t, "keep-ts?") != 0 {
					cmd.TS = g.ts
				}
				if rapid.Bool().Draw(t, "known-service?") {
					cmd.Service = rapid.SampledFrom(propServices).Draw(t, "service")
				}
				h.apply(cmd)
			} else {
				h.apply(g.draw(t))
			}
		}
	})
}
