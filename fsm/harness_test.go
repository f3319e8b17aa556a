package fsm

import (
	"bytes"
	"fmt"
	"reflect"
)

const t0 int64 = 1_700_000_000_000

const testPattern = "{node}/1.5/{uid}"

// harness applies commands and, after every one, checks what must hold
// for every command: the invariants, the result codec round trip, and that
// a failing command changed nothing.
// tb is what the harness needs from *testing.T and *rapid.T.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

type harness struct {
	t   tb
	f   *FSM
	tr  *tracker
	now int64
}

func newHarness(t tb, opts Options) *harness {
	return &harness{t: t, f: New(opts), tr: newTracker(), now: t0}
}

func (h *harness) tick(ms int64) { h.now += ms }

func (h *harness) apply(cmd Command) Result {
	h.t.Helper()
	if cmd.TS == 0 {
		cmd.TS = h.now
	}
	before := h.f.Fork()
	res := h.f.Apply(cmd)
	if res.Err != nil && !domainEqual(before, h.f) {
		h.t.Fatalf("failing command %+v (%v) changed the state", cmd, res.Err)
	}
	back, err := DecodeResult(EncodeResult(res))
	if err != nil || !reflect.DeepEqual(back, res) {
		h.t.Fatalf("result does not round-trip: %+v -> %+v (%v)", res, back, err)
	}
	h.tr.observe(before.st, cmd, res)
	checkInvariants(h.t, h.f, h.tr)
	if msg := viewMismatch(h.f); msg != "" {
		h.t.Fatalf("after %+v: %s", cmd, msg)
	}
	return res
}

// viewMismatch says how the published view differs from the writer's
// state, or "" when readers see exactly what the writer holds (as they
// must whenever no Apply is running).
func viewMismatch(f *FSM) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.View()
	if v.st == f.st {
		return "the view is the writer's own state, not a copy"
	}
	if v.st.lastTS != f.st.lastTS {
		return fmt.Sprintf("view last ts %d, writer %d", v.st.lastTS, f.st.lastTS)
	}
	var x, y bytes.Buffer
	if _, err := f.st.writeSnapshot(&x, false); err != nil {
		return "encoding the writer state: " + err.Error()
	}
	if _, err := v.st.writeSnapshot(&y, false); err != nil {
		return "encoding the view: " + err.Error()
	}
	if !bytes.Equal(x.Bytes(), y.Bytes()) {
		return "the view's state differs from the writer's"
	}
	return ""
}

func (h *harness) ok(cmd Command) Result {
	h.t.Helper()
	res := h.apply(cmd)
	if res.Err != nil {
		h.t.Fatalf("op %d: unexpected error %v", cmd.Op, res.Err)
	}
	return res
}

func (h *harness) fails(cmd Command, status, field string) *Error {
	h.t.Helper()
	res := h.apply(cmd)
	if res.Err == nil {
		h.t.Fatalf("op %d: want %s (%s), got success %+v", cmd.Op, status, field, res)
	}
	if res.Err.Status != status || res.Err.Field != field {
		h.t.Fatalf("op %d: want %s field %q, got %s field %q (%s)", cmd.Op, status, field, res.Err.Status, res.Err.Field, res.Err.Msg)
	}
	return res.Err
}

func (h *harness) service(name string) {
	h.t.Helper()
	h.ok(Command{Op: OpPutService, Service: name, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
}

func (h *harness) node(svc, url string, capacity int64) Node {
	h.t.Helper()
	return *h.ok(Command{Op: OpAddNode, Service: svc, NodeURL: url, Capacity: SomeInt64(capacity)}).Node
}

func (h *harness) getNode(svc string, id int64) Node {
	h.t.Helper()
	nd, err := h.f.GetNode(svc, id)
	if err != nil {
		h.t.Fatalf("GetNode(%s, %d): %v", svc, id, err)
	}
	return nd
}

func (h *harness) user(svc, email string) User {
	h.t.Helper()
	u, err := h.f.GetUser(svc, email)
	if err != nil {
		h.t.Fatalf("GetUser(%s, %s): %v", svc, email, err)
	}
	return u
}

func (h *harness) records(svc, email string) []Record {
	h.t.Helper()
	rs, err := h.f.Records(svc, email)
	if err != nil {
		h.t.Fatalf("Records(%s, %s): %v", svc, email, err)
	}
	return rs
}

func allocate(svc, email string) Command {
	return Command{Op: OpAllocate, Service: svc, Email: email}
}

func login(svc, email string, gen, kca int64, cs string) Command {
	cmd := Command{Op: OpLogin, Service: svc, Email: email, ClientState: SomeString(cs)}
	if gen != 0 {
		cmd.Generation = SomeInt64(gen)
	}
	if kca != 0 {
		cmd.KeysChangedAt = SomeInt64(kca)
	}
	return cmd
}

// domainEqual compares two states without last ts and the idempotency
// table (which every command may touch).
func domainEqual(a, b *FSM) bool {
	var x, y bytes.Buffer
	if _, err := a.st.writeSnapshot(&x, false); err != nil {
		return false
	}
	if _, err := b.st.writeSnapshot(&y, false); err != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}
