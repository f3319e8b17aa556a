package fsm

import (
	"encoding/binary"
	"fmt"
	"math/bits"
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
	opMax           = OpImportKeepTimes
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

// A value is written and read through a pointer to it, by its type (see
// encoder.value and decoder.value), so that one list of pointers, such as
// commandFields or serviceFields, gives both directions their order.

// nullableField is an int64 field that is Null when absent, as a value:
// present is the flag bit that records whether it is (see recordFlags).
type nullableField struct {
	p       *int64
	present bool
}

// listItem is a type encodeList and decodeList can carry.
type listItem interface {
	string | ImportService | ImportNode | ImportRecord
}

// value writes the value v points at: an int64 as a varint, a uint64 as a
// uvarint, a string, a bool as a byte, an Opt field (in commands only) as
// its V (its presence bit says Set), a nullableField as a varint when
// present, and a list item as that type's encoding.
func (e *encoder) value(v any) {
	switch p := v.(type) {
	case *int64:
		e.varint(*p)
	case *uint64:
		e.uvarint(*p)
	case *string:
		e.str(*p)
	case *bool:
		e.boolean(*p)
	case *OptInt64:
		e.varint(p.V)
	case *OptString:
		e.str(p.V)
	case *OptBool:
		e.boolean(p.V)
	case nullableField:
		e.nullable(*p.p)
	case *ImportService:
		e.values(importServiceFields(p))
	case *ImportNode:
		encodeImportNode(e, p)
	case *ImportRecord:
		encodeImportRecord(e, p)
	default:
		panic("fsm: encoder.value got a pointer to a type it has no encoding for")
	}
}

func (e *encoder) values(vs []any) {
	for _, v := range vs {
		e.value(v)
	}
}

// nullable writes v unless it is Null; a flag bit elsewhere says which
// (see recordFlags).
func (e *encoder) nullable(v int64) {
	if v != Null {
		e.varint(v)
	}
}

// encodeList writes the number of items, then each item.
func encodeList[T listItem](e *encoder, items []T) {
	e.uvarint(uint64(len(items)))
	for i := range items {
		e.value(&items[i])
	}
}

// decodeFailure is a decoder's first failure. It sticks: later reads
// return zero values, so callers check err once at the end.
type decodeFailure struct {
	err    error
	prefix string // before every message, naming what is decoded
}

func (f *decodeFailure) fail(format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s%s", ErrBadEncoding, f.prefix, fmt.Sprintf(format, args...))
	}
}

// boolOf is the bool a bool byte stands for; only 0 and 1 are valid.
func (f *decodeFailure) boolOf(b byte) bool {
	if b > 1 {
		f.fail("bool byte %d", b)
	}
	return b == 1
}

// unzigzag undoes binary.AppendVarint's zig-zag mapping: a varint is the
// uvarint of that mapping, which is how both decoders read one (as
// binary.Varint does).
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// decoder reads from a byte slice.
type decoder struct {
	b []byte
	decodeFailure
}

func (d *decoder) uvarint() uint64 { return d.number("uvarint") }
func (d *decoder) varint() int64   { return unzigzag(d.number("varint")) }

// number reads a uvarint; what names it in the error.
func (d *decoder) number(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
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

func (d *decoder) boolean() bool { return d.boolOf(d.byte1()) }

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

// value reads what encoder.value wrote into the value v points at; an Opt
// field comes out Set.
func (d *decoder) value(v any) {
	switch p := v.(type) {
	case *int64:
		*p = d.varint()
	case *uint64:
		*p = d.uvarint()
	case *string:
		*p = d.str()
	case *bool:
		*p = d.boolean()
	case *OptInt64:
		*p = SomeInt64(d.varint())
	case *OptString:
		*p = SomeString(d.str())
	case *OptBool:
		*p = SomeBool(d.boolean())
	case nullableField:
		*p.p = Null
		if p.present {
			*p.p = d.varint()
		}
	case *ImportService:
		d.values(importServiceFields(p))
	case *ImportNode:
		*p = decodeImportNode(d)
	case *ImportRecord:
		*p = decodeImportRecord(d)
	default:
		panic("fsm: decoder.value got a pointer to a type it has no encoding for")
	}
}

func (d *decoder) values(vs []any) {
	for _, v := range vs {
		d.value(v)
	}
}

// decodeList reads what encodeList wrote (nil for no items). The count is
// bounded by the bytes left, every item taking at least one, so that
// garbage cannot make it allocate; what names the items in that error.
func decodeList[T listItem](d *decoder, what string) []T {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("%d %s with %d bytes left", n, what, len(d.b))
	}
	if d.err != nil || n == 0 {
		return nil
	}
	items := make([]T, n)
	for i := 0; i < len(items) && d.err == nil; i++ {
		d.value(&items[i])
	}
	return items
}

// presenceBits reads the presence bits of a command or result and rejects
// any bit its format does not define: v1Bits of them in format 1, and the
// import bit after those in format 2 (withImport). what names them in the
// error.
func (d *decoder) presenceBits(v1Bits int, withImport bool, what string) uint64 {
	p := d.uvarint()
	defined := v1Bits
	if withImport {
		defined++
	}
	if p>>defined != 0 {
		d.fail("unknown %s bits %#x", what, p>>defined<<defined)
	}
	return p
}

func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

// commandFields points at the fields of cmd that the field bits stand
// for, entry b at the field of bit b: this one list gives the presence
// bits, the encoder and the decoder their field order.
func commandFields(cmd *Command) [cbCount]any {
	return [cbCount]any{
		cbTS:             &cmd.TS,
		cbSeed:           &cmd.Seed,
		cbIdempotencyKey: &cmd.IdempotencyKey,
		cbRequestHash:    &cmd.RequestHash,
		cbService:        &cmd.Service,
		cbEmail:          &cmd.Email,
		cbPattern:        &cmd.Pattern,
		cbReleaseRate:    &cmd.ReleaseRate,
		cbAllowNewUsers:  &cmd.AllowNewUsers,
		cbSpread:         &cmd.Spread,
		cbNodeID:         &cmd.NodeID,
		cbNodeURL:        &cmd.NodeURL,
		cbCapacity:       &cmd.Capacity,
		cbAvailable:      &cmd.Available,
		cbCurrentLoad:    &cmd.CurrentLoad,
		cbDowned:         &cmd.Downed,
		cbBackoff:        &cmd.Backoff,
		cbGeneration:     &cmd.Generation,
		cbKeysChangedAt:  &cmd.KeysChangedAt,
		cbClientState:    &cmd.ClientState,
		cbNode:           &cmd.Node,
		cbAt:             &cmd.At,
		cbUID:            &cmd.UID,
		cbEvent:          &cmd.Event,
	}
}

// present reports whether a command field is encoded: an Opt field when
// Set, any other when not zero.
func present(field any) bool {
	switch p := field.(type) {
	case *int64:
		return *p != 0
	case *uint64:
		return *p != 0
	case *string:
		return *p != ""
	case *OptInt64:
		return p.Set
	case *OptString:
		return p.Set
	case *OptBool:
		return p.Set
	}
	panic("fsm: present got a pointer to a type that is not a command field type")
}

// EncodeCommand returns the format-1 log encoding of cmd (format 2 when it
// carries an import). Opt fields with Set false are encoded as absent
// whatever their V.
func EncodeCommand(cmd Command) []byte {
	fields := commandFields(&cmd)
	var p uint64
	for b, f := range &fields {
		if present(f) {
			p |= 1 << b
		}
	}
	format := byte(commandFormatV1)
	if cmd.Import != nil {
		format = commandFormatV2
		p |= 1 << cbImport
	}
	e := encoder{b: make([]byte, 0, 48+len(cmd.Service)+len(cmd.Email)+len(cmd.ClientState.V)+len(cmd.IdempotencyKey))}
	e.b = append(e.b, format, byte(cmd.Op))
	e.uvarint(p)
	for q := p &^ (1 << cbImport); q != 0; q &= q - 1 {
		e.value(fields[bits.TrailingZeros64(q)])
	}
	if cmd.Import != nil {
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
	p := d.presenceBits(cbCount, format == commandFormatV2, "field")
	fields := commandFields(&cmd)
	for q := p &^ (1 << cbImport); q != 0 && d.err == nil; q &= q - 1 {
		d.value(fields[bits.TrailingZeros64(q)])
	}
	if d.err == nil && p&(1<<cbImport) != 0 {
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
		e.values(serviceFields(r.Service))
	}
	if r.Node != nil {
		e.values(nodeFields(r.Node))
	}
	if u := r.User; u != nil {
		e.values(recordFields(&u.Record))
		e.str(u.APIEndpoint)
		encodeList(&e, u.OldClientStates)
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

// serviceFields, nodeFields and recordFields point at the fields of a
// service, node or record in the order results encode them (snapshots
// too, for a service): encoder.values writes one such list and
// decoder.values reads it. They are small enough to inline, which keeps
// the list off the heap.
func serviceFields(s *Service) []any {
	return []any{&s.ID, &s.Name, &s.Pattern, &s.ReleaseRate, &s.AllowNewUsers, &s.Spread}
}

func nodeFields(n *Node) []any {
	return []any{&n.ID, &n.Service, &n.URL, &n.Capacity, &n.Available, &n.CurrentLoad, &n.Downed, &n.Backoff}
}

func recordFields(r *Record) []any {
	return []any{&r.UID, &r.Service, &r.Email, &r.NodeID, &r.NodeURL, &r.NodeDowned, &r.Generation,
		&r.KeysChangedAt, &r.ClientState, &r.CreatedAt, &r.ReplacedAt}
}

// DecodeResult decodes EncodeResult's output. Errors wrap ErrBadEncoding.
func DecodeResult(b []byte) (Result, error) {
	d := decoder{b: b}
	format := d.byte1()
	if d.err == nil && format != resultFormatV1 && format != resultFormatV2 {
		d.fail("unknown result format %d", format)
	}
	p := d.presenceBits(rbBits, format == resultFormatV2, "result")
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
		r.Service = &Service{}
		d.values(serviceFields(r.Service))
	}
	if has(rbNode) {
		r.Node = &Node{}
		d.values(nodeFields(r.Node))
	}
	if has(rbUser) {
		u := &User{}
		d.values(recordFields(&u.Record))
		u.APIEndpoint = d.str()
		u.OldClientStates = decodeList[string](&d, "old client states")
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
