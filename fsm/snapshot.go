package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
)

// Snapshot format 1:
//
//	magic "WIMMSNAP", uvarint version (1)
//	header:   varint lastTS, nextServiceID, nextNodeID, nextUID
//	services: uvarint n; n × service, ascending id
//	service:  varint id, str name, str pattern, str rate, bool allow, varint spread,
//	          uvarint n; n × node, ascending id,
//	          uvarint n; n × user, ascending email
//	node:     varint id, str url, varint capacity, available, current_load, byte flags
//	user:     str email, uvarint k; k × record, ascending uid
//	record:   byte flags, varint uid, node id, generation, [keys_changed_at], created_at, [replaced_at], [str client_state]
//	idempotency: uvarint n; n × (str key, uvarint hash, varint ts, bytes result), oldest first
//	trailer:  4 bytes big-endian CRC-32C of everything before it
//
// Every section is in a deterministic order, so equal states give
// byte-identical snapshots.

const (
	snapshotMagic     = "WIMMSNAP"
	snapshotVersionV1 = 1

	nodeFlagDowned  = 1 << 0
	nodeFlagBackoff = 1 << 1

	// Record flags. An imported record's flags are the first two.
	recFlagKeysChangedAt   = 1 << 0 // keys_changed_at present
	recFlagReplaced        = 1 << 1 // replaced_at present
	recFlagSameClientState = 1 << 2 // client_state equals the previous record's
	recFlagClientState     = 1 << 3 // client_state differs and is written
	recFlagsKnown          = 1<<4 - 1

	maxSnapshotResult = 1 << 20
)

// nodeFlags is a node's downed and backoff bits, as snapshots and import
// batches store them (one byte: nodeFlagDowned | nodeFlagBackoff).
func nodeFlags(downed, backoff bool) byte {
	var flags byte
	if downed {
		flags |= nodeFlagDowned
	}
	if backoff {
		flags |= nodeFlagBackoff
	}
	return flags
}

func flagsOfNode(flags byte) (downed, backoff bool) {
	return flags&nodeFlagDowned != 0, flags&nodeFlagBackoff != 0
}

// recordFlags are the record flag bits for whichever of keys_changed_at and
// replaced_at is present (not Null), as snapshots and import batches store
// them; encoder.nullable writes the two values accordingly.
func recordFlags(keysChangedAt, replacedAt int64) byte {
	var flags byte
	if keysChangedAt != Null {
		flags |= recFlagKeysChangedAt
	}
	if replacedAt != Null {
		flags |= recFlagReplaced
	}
	return flags
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// snapWriter buffers, counts and checksums everything written.
type snapWriter struct {
	bw      *bufio.Writer
	scratch encoder
	crc     uint32
	n       int64
	err     error
}

// flushItem writes the scratch buffer (one item) and resets it.
func (w *snapWriter) flushItem() {
	if w.err == nil {
		w.crc = crc32.Update(w.crc, crcTable, w.scratch.b)
		var n int
		n, w.err = w.bw.Write(w.scratch.b)
		w.n += int64(n)
	}
	w.scratch.b = w.scratch.b[:0]
}

// WriteTo streams the versioned binary encoding of the state to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	return s.st.writeSnapshot(w, true)
}

// Release is a no-op: the frozen view is garbage collected. It lets
// *Snapshot serve as a raft.FSMSnapshot alongside a Persist wrapper.
func (s *Snapshot) Release() {}

// writeSnapshot encodes the state. withMeta false leaves out last ts and
// the idempotency table (tests compare domain state with it); such output
// is not a valid snapshot.
func (s *state) writeSnapshot(out io.Writer, withMeta bool) (int64, error) {
	w := &snapWriter{bw: bufio.NewWriterSize(out, 64<<10), scratch: encoder{b: make([]byte, 0, 512)}}
	e := &w.scratch
	e.b = append(e.b, snapshotMagic...)
	e.uvarint(snapshotVersionV1)
	if withMeta {
		e.varint(s.lastTS)
	} else {
		e.varint(0)
	}
	e.varint(s.nextServiceID)
	e.varint(s.nextNodeID)
	e.varint(s.nextUID)

	services := s.servicesByID()
	e.uvarint(uint64(len(services)))
	for _, sv := range services {
		e.values(serviceFields(&sv.Service))
		e.uvarint(uint64(len(sv.nodes)))
		for i := range sv.nodes {
			nd := &sv.nodes[i]
			e.varint(nd.ID)
			e.str(nd.URL)
			e.varint(nd.Capacity)
			e.varint(nd.Available)
			e.varint(nd.CurrentLoad)
			e.b = append(e.b, nodeFlags(nd.Downed, nd.Backoff))
		}
		e.uvarint(uint64(sv.users.Len()))
		w.flushItem()
		sv.users.Ascend(func(ue userEntry) bool {
			writeUser(e, ue.u)
			w.flushItem()
			return w.err == nil
		})
	}

	if withMeta {
		e.uvarint(uint64(s.idemOrder.Len()))
		s.idemOrder.Ascend(func(ie *idemEntry) bool {
			e.str(ie.key)
			e.uvarint(ie.hash)
			e.varint(ie.ts)
			e.uvarint(uint64(len(ie.result)))
			e.b = append(e.b, ie.result...)
			w.flushItem()
			return w.err == nil
		})
	} else {
		e.uvarint(0)
	}
	w.flushItem()

	if w.err == nil {
		var sum [4]byte
		binary.BigEndian.PutUint32(sum[:], w.crc)
		var n int
		n, w.err = w.bw.Write(sum[:])
		w.n += int64(n)
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err != nil {
		return w.n, fmt.Errorf("write snapshot: %w", w.err)
	}
	return w.n, nil
}

func writeUser(e *encoder, u *user) {
	e.str(u.email)
	e.uvarint(uint64(len(u.recs)))
	for i := range u.recs {
		r := &u.recs[i]
		flags := recordFlags(r.keysChangedAt, r.replacedAt)
		switch {
		case i > 0 && r.clientState == u.recs[i-1].clientState:
			flags |= recFlagSameClientState
		case r.clientState != "":
			flags |= recFlagClientState
		}
		e.b = append(e.b, flags)
		e.varint(r.uid)
		e.varint(r.nodeID)
		e.varint(r.generation)
		e.nullable(r.keysChangedAt)
		e.varint(r.createdAt)
		e.nullable(r.replacedAt)
		if flags&recFlagClientState != 0 {
			e.str(r.clientState)
		}
	}
}

// snapReader is a buffered reader that checksums exactly the bytes the
// parser consumed (a bufio.Reader would read ahead into the trailer).
type snapReader struct {
	r       io.Reader
	buf     []byte
	pos     int
	crcFrom int
	crc     uint32
	decodeFailure
}

func (r *snapReader) fill() bool {
	if r.err != nil {
		return false
	}
	r.crc = crc32.Update(r.crc, crcTable, r.buf[r.crcFrom:r.pos])
	r.buf = r.buf[:cap(r.buf)]
	for tries := 0; ; tries++ {
		n, err := r.r.Read(r.buf)
		if n > 0 {
			r.buf, r.pos, r.crcFrom = r.buf[:n], 0, 0
			return true
		}
		if err != nil || tries > 100 {
			r.buf, r.pos, r.crcFrom = r.buf[:0], 0, 0
			switch {
			case errors.Is(err, io.EOF):
				r.fail("truncated")
			case err == nil:
				r.fail("reader makes no progress")
			default:
				r.err = fmt.Errorf("read snapshot: %w", err)
			}
			return false
		}
	}
}

func (r *snapReader) ReadByte() (byte, error) {
	if r.pos == len(r.buf) && !r.fill() {
		return 0, r.err
	}
	b := r.buf[r.pos]
	r.pos++
	return b, nil
}

func (r *snapReader) readFull(p []byte) {
	for len(p) > 0 {
		if r.pos == len(r.buf) && !r.fill() {
			return
		}
		n := copy(p, r.buf[r.pos:])
		r.pos += n
		p = p[n:]
	}
}

func (r *snapReader) byte1() byte {
	b, err := r.ReadByte()
	if err != nil {
		return 0
	}
	return b
}

func (r *snapReader) uvarint() uint64 { return r.number("uvarint") }
func (r *snapReader) varint() int64   { return unzigzag(r.number("varint")) }

// number reads a uvarint; what names it in the error.
func (r *snapReader) number(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(r)
	if err != nil {
		r.fail("bad %s", what)
		return 0
	}
	return v
}

func (r *snapReader) boolean() bool { return r.boolOf(r.byte1()) }

// bytesUpTo reads a length-prefixed byte string of at most max bytes; the
// bound is checked before allocating.
func (r *snapReader) bytesUpTo(max int, what string) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail("%s of %d bytes (max %d)", what, n, max)
		return nil
	}
	p := make([]byte, n)
	r.readFull(p)
	return p
}

func (r *snapReader) str(max int, what string) string { return string(r.bytesUpTo(max, what)) }

// sum returns the checksum of every byte consumed so far.
func (r *snapReader) sum() uint32 {
	r.crc = crc32.Update(r.crc, crcTable, r.buf[r.crcFrom:r.pos])
	r.crcFrom = r.pos
	return r.crc
}

// readSnapshot parses and fully validates a snapshot into a new state. It
// never touches a live state, so a failed restore changes nothing.
func readSnapshot(in io.Reader) (*state, error) {
	r := &snapReader{r: in, buf: make([]byte, 0, 64<<10), decodeFailure: decodeFailure{prefix: "snapshot: "}}
	var magic [len(snapshotMagic)]byte
	r.readFull(magic[:])
	if r.err == nil && string(magic[:]) != snapshotMagic {
		r.fail("bad magic %q", magic[:])
	}
	version := r.uvarint()
	if r.err == nil && version != snapshotVersionV1 {
		r.fail("unknown version %d", version)
	}
	if r.err != nil {
		return nil, r.err
	}
	s := newState()
	readSnapshotV1(r, s)
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// restoreCheck carries what validation needs across sections.
type restoreCheck struct {
	nodeService map[int64]int64 // every node id seen → its service
	created     []uidCreated    // every record, to check uids globally
}

type uidCreated struct{ uid, createdAt int64 }

func readSnapshotV1(r *snapReader, s *state) {
	s.lastTS = r.varint()
	s.nextServiceID = r.varint()
	s.nextNodeID = r.varint()
	s.nextUID = r.varint()
	if r.err == nil && (s.lastTS < 0 || s.nextServiceID < 1 || s.nextNodeID < 1 || s.nextUID < 1) {
		r.fail("bad header")
	}
	chk := &restoreCheck{nodeService: map[int64]int64{}}
	nServices := r.uvarint()
	prevID := int64(0)
	for i := uint64(0); i < nServices && r.err == nil; i++ {
		sv := readService(r, s, chk, prevID)
		if r.err != nil {
			return
		}
		prevID = sv.ID
	}
	if r.err != nil {
		return
	}
	// uids are unique across services. created_at may go down as they
	// grow: imported records keep their source's times.
	slices.SortFunc(chk.created, func(a, b uidCreated) int { return cmpInt64(a.uid, b.uid) })
	for i := 1; i < len(chk.created) && r.err == nil; i++ {
		if a, b := chk.created[i-1], chk.created[i]; a.uid == b.uid {
			r.fail("duplicate uid %d", b.uid)
		}
	}

	nIdem := r.uvarint()
	prevTS := int64(math.MinInt64)
	for i := uint64(0); i < nIdem && r.err == nil; i++ {
		e := &idemEntry{}
		e.key = r.str(maxIdempotencyKey, "idempotency key")
		e.hash = r.uvarint()
		e.ts = r.varint()
		e.result = r.bytesUpTo(maxSnapshotResult, "idempotent result")
		if r.err != nil {
			return
		}
		_, decodeErr := DecodeResult(e.result)
		switch {
		case e.key == "" || checkIdempotencyKey(e.key) != nil:
			r.fail("invalid idempotency key")
		case e.ts < prevTS || e.ts > s.lastTS:
			r.fail("idempotency entry ts %d out of order", e.ts)
		case s.idem.Has(e):
			r.fail("duplicate idempotency key %q", e.key)
		case decodeErr != nil:
			r.fail("idempotency result: %v", decodeErr)
		}
		prevTS = e.ts
		s.idemSeq++
		e.seq = s.idemSeq
		s.idem.ReplaceOrInsert(e)
		s.idemOrder.ReplaceOrInsert(e)
	}
	if r.err != nil {
		return
	}
	want := r.sum()
	var sum [4]byte
	r.readFull(sum[:])
	if r.err == nil && binary.BigEndian.Uint32(sum[:]) != want {
		r.fail("checksum mismatch")
	}
	r.expectEOF()
}

func readService(r *snapReader, s *state, chk *restoreCheck, prevID int64) *svcState {
	var svc Service
	svc.ID = r.varint()
	svc.Name = r.str(maxServiceName, "service name")
	svc.Pattern = r.str(maxPattern, "pattern")
	svc.ReleaseRate = r.str(64, "release rate")
	svc.AllowNewUsers = r.boolean()
	svc.Spread = r.varint()
	if r.err != nil {
		return nil
	}
	rateNano, ok := parseRate(svc.ReleaseRate)
	switch {
	case svc.ID <= prevID || svc.ID >= s.nextServiceID:
		r.fail("service id %d out of order or range", svc.ID)
	case !validServiceName(svc.Name) || checkPattern(svc.Pattern) != nil || !ok || svc.Spread < 1:
		r.fail("invalid service %d", svc.ID)
	case s.svcByName[svc.Name] != nil:
		r.fail("duplicate service %q", svc.Name)
	}
	sv := newSvcState(svc, rateNano)
	s.svcByID[sv.ID] = sv
	s.svcByName[sv.Name] = sv

	nNodes := r.uvarint()
	for i := uint64(0); i < nNodes && r.err == nil; i++ {
		nd := Node{Service: sv.Name}
		nd.ID = r.varint()
		nd.URL = r.str(maxNodeURL, "node url")
		nd.Capacity = r.varint()
		nd.Available = r.varint()
		nd.CurrentLoad = r.varint()
		flags := r.byte1()
		if r.err != nil {
			return nil
		}
		_, seen := chk.nodeService[nd.ID]
		switch {
		case seen || nd.ID < 1 || nd.ID >= s.nextNodeID || (len(sv.nodes) > 0 && nd.ID <= sv.nodes[len(sv.nodes)-1].ID):
			r.fail("node id %d duplicate, out of order or out of range", nd.ID)
		case checkNodeURL("node", nd.URL) != nil || nd.Capacity < 0 || nd.Available < 0 || nd.CurrentLoad < 0 || flags > nodeFlagDowned|nodeFlagBackoff:
			r.fail("invalid node %d", nd.ID)
		case sv.nodeIndexByURL(nd.URL) >= 0:
			r.fail("duplicate node %q", nd.URL)
		}
		nd.Downed, nd.Backoff = flagsOfNode(flags)
		sv.nodes = append(sv.nodes, nd)
		chk.nodeService[nd.ID] = sv.ID
	}

	nUsers := r.uvarint()
	var prev *user
	for i := uint64(0); i < nUsers && r.err == nil; i++ {
		u := readUser(r, s, sv, chk)
		if r.err != nil {
			return nil
		}
		if prev != nil && prev.email >= u.email {
			r.fail("users out of order at %q", u.email)
			return nil
		}
		prev = u
		s.publish(nil, u)
	}
	return sv
}

// expectEOF fails unless the input ends right here.
func (r *snapReader) expectEOF() {
	if r.err != nil {
		return
	}
	if r.pos < len(r.buf) {
		r.fail("trailing data")
		return
	}
	var one [1]byte
	for tries := 0; tries < 100; tries++ {
		n, err := r.r.Read(one[:])
		switch {
		case n > 0:
			r.fail("trailing data")
			return
		case errors.Is(err, io.EOF):
			return
		case err != nil:
			r.err = fmt.Errorf("read snapshot: %w", err)
			return
		}
	}
	r.fail("reader makes no progress")
}

func readUser(r *snapReader, s *state, sv *svcState, chk *restoreCheck) *user {
	email := r.str(maxEmail, "email")
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	switch {
	case checkEmail(email) != nil:
		r.fail("invalid email")
	case n == 0:
		r.fail("user without records")
	}
	var u *user
	if n == 1 {
		// Most users have one record: user and record in one allocation,
		// as newUser does, halves the objects restore makes (and the GC scans).
		u = newUser(sv.ID, email, rec{})
		u.recs = u.recs[:0]
	} else {
		u = &user{svc: sv.ID, email: email}
		// Each record takes at least 5 bytes; cap the preallocation anyway.
		u.recs = make([]rec, 0, min(n, 16))
	}
	for j := uint64(0); j < n && r.err == nil; j++ {
		flags := r.byte1()
		var rc rec
		rc.uid = r.varint()
		rc.nodeID = r.varint()
		rc.generation = r.varint()
		rc.keysChangedAt = Null
		if flags&recFlagKeysChangedAt != 0 {
			rc.keysChangedAt = r.varint()
		}
		rc.createdAt = r.varint()
		rc.replacedAt = Null
		if flags&recFlagReplaced != 0 {
			rc.replacedAt = r.varint()
		}
		switch {
		case flags&recFlagSameClientState != 0 && flags&recFlagClientState != 0, flags&^recFlagsKnown != 0:
			r.fail("bad record flags %#x", flags)
		case flags&recFlagSameClientState != 0:
			if j == 0 {
				r.fail("first record cannot share a client state")
			} else {
				rc.clientState = u.recs[j-1].clientState
			}
		case flags&recFlagClientState != 0:
			rc.clientState = r.str(maxClientState, "client state")
		}
		if r.err != nil {
			return nil
		}
		nodeSvc, nodeExists := chk.nodeService[rc.nodeID]
		switch {
		case rc.uid < 1 || rc.uid >= s.nextUID || (j > 0 && rc.uid <= u.recs[j-1].uid):
			r.fail("record uid %d out of order or range", rc.uid)
		case rc.nodeID < 1 || rc.nodeID >= s.nextNodeID || (nodeExists && nodeSvc != sv.ID):
			r.fail("record %d has a bad node id %d", rc.uid, rc.nodeID)
		case rc.generation < 0 || (rc.keysChangedAt != Null && rc.keysChangedAt < 0):
			r.fail("record %d has a negative generation or keys_changed_at", rc.uid)
		case rc.createdAt < 0 || rc.createdAt > s.lastTS || (rc.replacedAt != Null && rc.replacedAt < 0):
			r.fail("record %d has bad times", rc.uid)
		case checkClientState(SomeString(rc.clientState)) != nil:
			r.fail("record %d has an invalid client state", rc.uid)
		case j+1 < n && rc.replacedAt == Null:
			r.fail("record %d is live but not current", rc.uid)
		}
		u.recs = append(u.recs, rc)
		chk.created = append(chk.created, uidCreated{rc.uid, rc.createdAt})
	}
	return u
}
