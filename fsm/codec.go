package fsm

import (
	"encoding/binary"
	"fmt"
)

// Log encoding of commands and results.
//
// Layout (format 1): [format byte][op byte (commands only)][uvarint
// presence bits][present fields in bit order]. Integers are varints
// (zig-zag) or uvarints, strings are uvarint length + bytes, bools one
// byte 0/1. A field whose bit is clear is absent (Opt*) or zero. Adding a
// field means a new format byte (see DESIGN.md): a format-1 decoder rejects
// unknown bits rather than silently dropping data.

const (
	commandFormatV1 = 1
	resultFormatV1  = 1
	// Format 2 is format 1 plus one more field bit (cbImport / rbImport).
	// Writers use it only for a command or result that carries an import,
	// so every other command still encodes byte for byte as format 1.
	commandFormatV2 = 2
	resultFormatV2  = 2
	opMax           = OpImport
)

// Command field bits, format 1. Never renumber.
const (
	cbTS = iota
	cbSeed
	cbIdempotencyKey
	cbRequestHash
	cbService
	cbEmail
	cbPattern
	cbReleaseRate
	cbAllowNewUsers
	cbSpread
	cbNodeID
	cbNodeURL
	cbCapacity
	cbAvailable
	cbCurrentLoad
	cbDowned
	cbBackoff
	cbGeneration
	cbKeysChangedAt
	cbClientState
	cbNode
	cbAt
	cbUID
	cbEvent
	cbCount // number of defined bits in format 1
)

// cbImport is the one field bit format 2 adds.
const cbImport = cbCount

// Result field bits, format 1. Never renumber.
const (
	rbErr = iota
	rbCreated
	rbService
	rbNode
	rbUser
	rbFxaKid
	rbCount
	rbRepeated
	rbBits
)

// rbImport is the one result bit format 2 adds.
const rbImport = rbBits

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(v string) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) boolean(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// decoder reads from a byte slice. The first failure sticks; later reads
// return zero values, so callers check err once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadEncoding, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) boolean() bool {
	v := d.byte1()
	if v > 1 {
		d.fail("bool byte %d", v)
	}
	return v == 1
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string of %d bytes with %d left", n, len(d.b))
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

// EncodeCommand returns the format-1 log encoding of cmd. Opt fields with
// Set false are encoded as absent whatever their V.
func EncodeCommand(cmd Command) []byte {
	var p uint64
	bit := func(b int, on bool) {
		if on {
			p |= 1 << b
		}
	}
	bit(cbTS, cmd.TS != 0)
	bit(cbSeed, cmd.Seed != 0)
	bit(cbIdempotencyKey, cmd.IdempotencyKey != "")
	bit(cbRequestHash, cmd.RequestHash != 0)
	bit(cbService, cmd.Service != "")
	bit(cbEmail, cmd.Email != "")
	bit(cbPattern, cmd.Pattern.Set)
	bit(cbReleaseRate, cmd.ReleaseRate.Set)
	bit(cbAllowNewUsers, cmd.AllowNewUsers.Set)
	bit(cbSpread, cmd.Spread.Set)
	bit(cbNodeID, cmd.NodeID != 0)
	bit(cbNodeURL, cmd.NodeURL != "")
	bit(cbCapacity, cmd.Capacity.Set)
	bit(cbAvailable, cmd.Available.Set)
	bit(cbCurrentLoad, cmd.CurrentLoad.Set)
	bit(cbDowned, cmd.Downed.Set)
	bit(cbBackoff, cmd.Backoff.Set)
	bit(cbGeneration, cmd.Generation.Set)
	bit(cbKeysChangedAt, cmd.KeysChangedAt.Set)
	bit(cbClientState, cmd.ClientState.Set)
	bit(cbNode, cmd.Node.Set)
	bit(cbAt, cmd.At.Set)
	bit(cbUID, cmd.UID != 0)
	bit(cbEvent, cmd.Event != "")

	format := byte(commandFormatV1)
	if cmd.Import != nil {
		format = commandFormatV2
		bit(cbImport, true)
	}
	e := encoder{b: make([]byte, 0, 48+len(cmd.Service)+len(cmd.Email)+len(cmd.ClientState.V)+len(cmd.IdempotencyKey))}
	e.b = append(e.b, format, byte(cmd.Op))
	e.uvarint(p)
	has := func(b int) bool { return p&(1<<b) != 0 }
	if has(cbTS) {
		e.varint(cmd.TS)
	}
	if has(cbSeed) {
		e.uvarint(cmd.Seed)
	}
	if has(cbIdempotencyKey) {
		e.str(cmd.IdempotencyKey)
	}
	if has(cbRequestHash) {
		e.uvarint(cmd.RequestHash)
	}
	if has(cbService) {
		e.str(cmd.Service)
	}
	if has(cbEmail) {
		e.str(cmd.Email)
	}
	if has(cbPattern) {
		e.str(cmd.Pattern.V)
	}
	if has(cbReleaseRate) {
		e.str(cmd.ReleaseRate.V)
	}
	if has(cbAllowNewUsers) {
		e.boolean(cmd.AllowNewUsers.V)
	}
	if has(cbSpread) {
		e.varint(cmd.Spread.V)
	}
	if has(cbNodeID) {
		e.varint(cmd.NodeID)
	}
	if has(cbNodeURL) {
		e.str(cmd.NodeURL)
	}
	if has(cbCapacity) {
		e.varint(cmd.Capacity.V)
	}
	if has(cbAvailable) {
		e.varint(cmd.Available.V)
	}
	if has(cbCurrentLoad) {
		e.varint(cmd.CurrentLoad.V)
	}
	if has(cbDowned) {
		e.boolean(cmd.Downed.V)
	}
	if has(cbBackoff) {
		e.boolean(cmd.Backoff.V)
	}
	if has(cbGeneration) {
		e.varint(cmd.Generation.V)
	}
	if has(cbKeysChangedAt) {
		e.varint(cmd.KeysChangedAt.V)
	}
	if has(cbClientState) {
		e.str(cmd.ClientState.V)
	}
	if has(cbNode) {
		e.str(cmd.Node.V)
	}
	if has(cbAt) {
		e.varint(cmd.At.V)
	}
	if has(cbUID) {
		e.varint(cmd.UID)
	}
	if has(cbEvent) {
		e.str(cmd.Event)
	}
	if has(cbImport) {
		encodeImportBatch(&e, cmd.Import)
	}
	return e.b
}

// DecodeCommand decodes any known format. Errors wrap ErrBadEncoding.
func DecodeCommand(b []byte) (Command, error) {
	d := decoder{b: b}
	switch format := d.byte1(); {
	case d.err != nil:
		return Command{}, fmt.Errorf("decode command: %w", d.err)
	case format == commandFormatV1 || format == commandFormatV2:
		cmd := decodeCommandFields(&d, format)
		if d.err != nil {
			return Command{}, fmt.Errorf("decode command: %w", d.err)
		}
		return cmd, nil
	default:
		return Command{}, fmt.Errorf("decode command: %w: unknown format %d", ErrBadEncoding, format)
	}
}

// decodeCommandFields decodes format 1, or format 2 (format 1 plus the
// import bit).
func decodeCommandFields(d *decoder, format byte) Command {
	var cmd Command
	cmd.Op = Op(d.byte1())
	if d.err == nil && (cmd.Op < OpNoop || cmd.Op > opMax) {
		d.fail("unknown op %d", cmd.Op)
	}
	p := d.uvarint()
	bits := cbCount
	if format == commandFormatV2 {
		bits = cbImport + 1
	}
	if p>>bits != 0 {
		d.fail("unknown field bits %#x", p>>bits<<bits)
	}
	has := func(b int) bool { return d.err == nil && p&(1<<b) != 0 }
	optInt := func(b int) OptInt64 {
		if !has(b) {
			return OptInt64{}
		}
		return OptInt64{Set: true, V: d.varint()}
	}
	optStr := func(b int) OptString {
		if !has(b) {
			return OptString{}
		}
		return OptString{Set: true, V: d.str()}
	}
	optBool := func(b int) OptBool {
		if !has(b) {
			return OptBool{}
		}
		return OptBool{Set: true, V: d.boolean()}
	}
	if has(cbTS) {
		cmd.TS = d.varint()
	}
	if has(cbSeed) {
		cmd.Seed = d.uvarint()
	}
	if has(cbIdempotencyKey) {
		cmd.IdempotencyKey = d.str()
	}
	if has(cbRequestHash) {
		cmd.RequestHash = d.uvarint()
	}
	if has(cbService) {
		cmd.Service = d.str()
	}
	if has(cbEmail) {
		cmd.Email = d.str()
	}
	cmd.Pattern = optStr(cbPattern)
	cmd.ReleaseRate = optStr(cbReleaseRate)
	cmd.AllowNewUsers = optBool(cbAllowNewUsers)
	cmd.Spread = optInt(cbSpread)
	if has(cbNodeID) {
		cmd.NodeID = d.varint()
	}
	if has(cbNodeURL) {
		cmd.NodeURL = d.str()
	}
	cmd.Capacity = optInt(cbCapacity)
	cmd.Available = optInt(cbAvailable)
	cmd.CurrentLoad = optInt(cbCurrentLoad)
	cmd.Downed = optBool(cbDowned)
	cmd.Backoff = optBool(cbBackoff)
	cmd.Generation = optInt(cbGeneration)
	cmd.KeysChangedAt = optInt(cbKeysChangedAt)
	cmd.ClientState = optStr(cbClientState)
	cmd.Node = optStr(cbNode)
	cmd.At = optInt(cbAt)
	if has(cbUID) {
		cmd.UID = d.varint()
	}
	if has(cbEvent) {
		cmd.Event = d.str()
	}
	if has(cbImport) {
		cmd.Import = decodeImportBatch(d)
	} else if format == commandFormatV2 && d.err == nil {
		d.fail("format 2 command without an import batch")
	}
	d.end()
	return cmd
}

// EncodeResult returns the format-1 encoding of r (the idempotency table
// stores results this way, so a repeat returns exactly the first answer).
func EncodeResult(r Result) []byte {
	var p uint64
	bit := func(b int, on bool) {
		if on {
			p |= 1 << b
		}
	}
	bit(rbErr, r.Err != nil)
	bit(rbCreated, r.Created)
	bit(rbService, r.Service != nil)
	bit(rbNode, r.Node != nil)
	bit(rbUser, r.User != nil)
	bit(rbFxaKid, r.FxaKid != "")
	bit(rbCount, r.Count != 0)
	bit(rbRepeated, r.Repeated)
	format := byte(resultFormatV1)
	if r.Import != nil {
		format = resultFormatV2
		bit(rbImport, true)
	}
	e := encoder{b: make([]byte, 0, 128)}
	e.b = append(e.b, format)
	e.uvarint(p)
	if r.Err != nil {
		e.str(r.Err.Status)
		e.str(r.Err.Field)
		e.str(r.Err.Reason)
		e.str(r.Err.Msg)
	}
	if r.Service != nil {
		encodeService(&e, r.Service)
	}
	if r.Node != nil {
		encodeNode(&e, r.Node)
	}
	if u := r.User; u != nil {
		encodeRecord(&e, &u.Record)
		e.str(u.APIEndpoint)
		e.uvarint(uint64(len(u.OldClientStates)))
		for _, cs := range u.OldClientStates {
			e.str(cs)
		}
		e.varint(u.FirstSeenAt)
	}
	if r.FxaKid != "" {
		e.str(r.FxaKid)
	}
	if r.Count != 0 {
		e.varint(r.Count)
	}
	if r.Import != nil {
		encodeImportCounts(&e, r.Import)
	}
	return e.b
}

func encodeService(e *encoder, s *Service) {
	e.varint(s.ID)
	e.str(s.Name)
	e.str(s.Pattern)
	e.str(s.ReleaseRate)
	e.boolean(s.AllowNewUsers)
	e.varint(s.Spread)
}

func decodeService(d *decoder) *Service {
	return &Service{ID: d.varint(), Name: d.str(), Pattern: d.str(), ReleaseRate: d.str(), AllowNewUsers: d.boolean(), Spread: d.varint()}
}

func encodeNode(e *encoder, n *Node) {
	e.varint(n.ID)
	e.str(n.Service)
	e.str(n.URL)
	e.varint(n.Capacity)
	e.varint(n.Available)
	e.varint(n.CurrentLoad)
	e.boolean(n.Downed)
	e.boolean(n.Backoff)
}

func decodeNode(d *decoder) *Node {
	return &Node{ID: d.varint(), Service: d.str(), URL: d.str(), Capacity: d.varint(), Available: d.varint(),
		CurrentLoad: d.varint(), Downed: d.boolean(), Backoff: d.boolean()}
}

func encodeRecord(e *encoder, r *Record) {
	e.varint(r.UID)
	e.str(r.Service)
	e.str(r.Email)
	e.varint(r.NodeID)
	e.str(r.NodeURL)
	e.boolean(r.NodeDowned)
	e.varint(r.Generation)
	e.varint(r.KeysChangedAt)
	e.str(r.ClientState)
	e.varint(r.CreatedAt)
	e.varint(r.ReplacedAt)
}

func decodeRecord(d *decoder) Record {
	return Record{UID: d.varint(), Service: d.str(), Email: d.str(), NodeID: d.varint(), NodeURL: d.str(),
		NodeDowned: d.boolean(), Generation: d.varint(), KeysChangedAt: d.varint(), ClientState: d.str(),
		CreatedAt: d.varint(), ReplacedAt: d.varint()}
}

// DecodeResult decodes EncodeResult's output. Errors wrap ErrBadEncoding.
func DecodeResult(b []byte) (Result, error) {
	d := decoder{b: b}
	format := d.byte1()
	if d.err == nil && format != resultFormatV1 && format != resultFormatV2 {
		d.fail("unknown result format %d", format)
	}
	p := d.uvarint()
	bits := rbBits
	if format == resultFormatV2 {
		bits = rbImport + 1
	}
	if p>>bits != 0 {
		d.fail("unknown result bits %#x", p>>bits<<bits)
	}
	if d.err != nil {
		return Result{}, fmt.Errorf("decode result: %w", d.err)
	}
	has := func(b int) bool { return p&(1<<b) != 0 }
	var r Result
	r.Created = has(rbCreated)
	r.Repeated = has(rbRepeated)
	if has(rbErr) {
		r.Err = &Error{Status: d.str(), Field: d.str(), Reason: d.str(), Msg: d.str()}
	}
	if has(rbService) {
		r.Service = decodeService(&d)
	}
	if has(rbNode) {
		r.Node = decodeNode(&d)
	}
	if has(rbUser) {
		u := &User{Record: decodeRecord(&d)}
		u.APIEndpoint = d.str()
		n := d.uvarint()
		// Each string takes at least one byte: bound n before allocating.
		if n > uint64(len(d.b)) {
			d.fail("%d old client states with %d bytes left", n, len(d.b))
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			u.OldClientStates = append(u.OldClientStates, d.str())
		}
		u.FirstSeenAt = d.varint()
		r.User = u
	}
	if has(rbFxaKid) {
		r.FxaKid = d.str()
	}
	if has(rbCount) {
		r.Count = d.varint()
	}
	if has(rbImport) {
		r.Import = decodeImportCounts(&d)
	} else if format == resultFormatV2 && d.err == nil {
		d.fail("format 2 result without import counts")
	}
	d.end()
	if d.err != nil {
		return Result{}, fmt.Errorf("decode result: %w", d.err)
	}
	return r, nil
}
