package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// MaxBodyBytes is the largest request body accepted (docs/api.md: over 64 KiB is
// 400 bad-request); declared in package wire.
const MaxBodyBytes = wire.MaxBodyBytes

// jsonObject is a request body split into its top-level members. Bodies are
// flat objects of scalars, so splitting first lets every problem be reported
// under the field's own name, which json.Decoder's errors for unknown fields
// do not offer in a stable form.
type jsonObject struct {
	fields map[string]json.RawMessage
	order  []string // keys in body order, so unknown fields are reported deterministically
	// orderBuf holds order for the usual few members.
	orderBuf [8]string
}

// emptyObject is every empty body's object; nothing writes to an object
// once parsed.
var emptyObject = &jsonObject{}

// parseObject reads exactly one JSON object from body. An empty body is an
// empty object. Duplicate keys and anything after the object are rejected:
// both would let two readers of the same bytes disagree about the request.
func parseObject(body []byte) (*jsonObject, *ErrorDetail) {
	if len(bytes.TrimSpace(body)) == 0 {
		return emptyObject, nil
	}
	if obj, ok := splitFlatObject(body); ok {
		return obj, nil
	}
	return decodeObject(body)
}

// decodeObject is parseObject for any body, with json.Decoder, which names
// what is wrong with a body.
func decodeObject(body []byte) (*jsonObject, *ErrorDetail) {
	obj := &jsonObject{fields: map[string]json.RawMessage{}}
	bad := func(desc string) *ErrorDetail {
		return &ErrorDetail{Location: LocationBody, Name: "body", Description: desc}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, bad("invalid JSON: " + err.Error())
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, bad("body must be a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("invalid JSON: " + err.Error())
		}
		key, ok := tok.(string)
		if !ok {
			return nil, bad("invalid JSON: object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &ErrorDetail{Location: LocationBody, Name: key, Description: "invalid JSON value: " + err.Error()}
		}
		if _, dup := obj.fields[key]; dup {
			return nil, &ErrorDetail{Location: LocationBody, Name: key, Description: "field appears more than once"}
		}
		obj.fields[key] = raw
		obj.order = append(obj.order, key)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, bad("invalid JSON: " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("unexpected data after the JSON object")
	}
	return obj, nil
}

// splitFlatObject splits the bodies clients send, without json.Decoder's
// per-token allocations: one object whose keys are ASCII strings without
// escapes and whose values are strings without escapes or control
// characters, numbers, true, false or null, with JSON whitespace between
// tokens. ok is false for any other body (nested values, escapes, a
// duplicate key, anything invalid or after the object): decodeObject then
// reads it and reports what is wrong. For a body both accept they return
// the same members (TestSplitFlatObjectAgreesWithTheDecoder).
func splitFlatObject(body []byte) (obj *jsonObject, ok bool) {
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	obj = &jsonObject{}
	obj.order = obj.orderBuf[:0]
	i = skipJSONSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return obj, skipJSONSpace(body, i+1) == len(body)
	}
	for {
		// A key: ASCII, no escapes (decoding one would change it).
		if i >= len(body) || body[i] != '"' {
			return nil, false
		}
		start := i + 1
		end := start
		for end < len(body) && body[end] != '"' {
			if c := body[end]; c < 0x20 || c == '\\' || c >= 0x80 {
				return nil, false
			}
			end++
		}
		if end >= len(body) {
			return nil, false
		}
		key := fieldName(body[start:end])
		i = skipJSONSpace(body, end+1)
		if i >= len(body) || body[i] != ':' {
			return nil, false
		}
		i = skipJSONSpace(body, i+1)
		n := flatValueLen(body[i:])
		if n == 0 {
			return nil, false
		}
		if obj.fields == nil {
			obj.fields = make(map[string]json.RawMessage, 4)
		}
		if _, dup := obj.fields[key]; dup {
			return nil, false
		}
		obj.fields[key] = json.RawMessage(body[i : i+n])
		obj.order = append(obj.order, key)
		i = skipJSONSpace(body, i+n)
		if i >= len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipJSONSpace(body, i+1)
		case '}':
			return obj, skipJSONSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

// fieldName is the key k as a string, without allocating for the field
// names of the hot requests.
func fieldName(k []byte) string {
	switch string(k) {
	case "generation":
		return "generation"
	case "keys_changed_at":
		return "keys_changed_at"
	case "client_state":
		return "client_state"
	case "email":
		return "email"
	case "node":
		return "node"
	}
	return string(k)
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// flatValueLen is the length of the scalar JSON value b starts with: a
// string without escapes or control characters, a number, true, false or
// null; 0 when b starts with none of those.
func flatValueLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch c := b[0]; {
	case c == '"':
		for i := 1; i < len(b); i++ {
			switch c := b[i]; {
			case c == '"':
				return i + 1
			case c < 0x20 || c == '\\':
				return 0
			}
		}
		return 0
	case c == 't' && bytes.HasPrefix(b, []byte("true")):
		return literalLen(b, 4)
	case c == 'f' && bytes.HasPrefix(b, []byte("false")):
		return literalLen(b, 5)
	case c == 'n' && bytes.HasPrefix(b, []byte("null")):
		return literalLen(b, 4)
	case c == '-' || (c >= '0' && c <= '9'):
		return numberLen(b)
	}
	return 0
}

// literalLen is n when b's literal of n bytes ends there (a delimiter or
// the end follows), else 0.
func literalLen(b []byte, n int) int {
	if n < len(b) && !isJSONDelim(b[n]) {
		return 0
	}
	return n
}

func isJSONDelim(c byte) bool {
	return c == ',' || c == '}' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// numberLen is the length of the JSON number b starts with (RFC 8259:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), followed by a
// delimiter or the end; else 0.
func numberLen(b []byte) int {
	i := 0
	digits := func() int {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - start
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return literalLen(b, i)
}

// canonical returns a byte form of the object that is the same for bodies
// that mean the same: key order, whitespace, string escapes and null
// (= absent) members do not matter; overrides replace a member's value by
// its canonical form (release_rate 0.10 → 0.1). It feeds the idempotency
// request hash.
func (o *jsonObject) canonical(overrides map[string]any) []byte {
	m := make(map[string]any, len(o.fields))
	for k, raw := range o.fields {
		if string(raw) == "null" {
			continue
		}
		if v, ok := overrides[k]; ok {
			m[k] = v
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // keep number literals verbatim, never via float64
		var v any
		if err := dec.Decode(&v); err != nil {
			// parseObject accepted raw, so this cannot fail; fall back to the
			// bytes rather than hashing less than was sent.
			v = string(raw)
		}
		m[k] = v
	}
	b, err := json.Marshal(m) // sorts keys
	if err != nil {
		// Only strings, json.Number, bools and nested values of JSON we
		// parsed ourselves are in m; fall back to the field names and raw
		// bytes rather than a constant that would make bodies collide.
		var buf bytes.Buffer
		for k, raw := range o.fields {
			buf.WriteString(k)
			buf.Write(raw)
		}
		return buf.Bytes()
	}
	return b
}

// fieldReader extracts typed, validated fields from a jsonObject, collecting
// every problem instead of stopping at the first.
type fieldReader struct {
	obj *jsonObject
	// used names the fields asked for (a handful; usedBuf holds them).
	used    []string
	usedBuf [8]string
	errs    []ErrorDetail
	// canon holds canonical values of fields whose JSON spelling may vary
	// without changing meaning, for the request hash (nil until one is).
	canon map[string]any
}

// init readies f to read obj's fields.
func (f *fieldReader) init(obj *jsonObject) {
	*f = fieldReader{obj: obj}
	f.used = f.usedBuf[:0]
}

func (f *fieldReader) isUsed(name string) bool {
	for _, u := range f.used {
		if u == name {
			return true
		}
	}
	return false
}

func (f *fieldReader) fail(name, desc string) {
	f.errs = append(f.errs, ErrorDetail{Location: LocationBody, Name: name, Description: desc})
}

// raw returns the field's JSON and whether it is present and not null. A
// null optional field is treated as absent; a required one as missing.
func (f *fieldReader) raw(name string, required bool) (json.RawMessage, bool) {
	if !f.isUsed(name) {
		f.used = append(f.used, name)
	}
	raw, ok := f.obj.fields[name]
	if ok && string(raw) == "null" {
		ok = false
	}
	if !ok && required {
		f.fail(name, "is required")
	}
	return raw, ok
}

// readField reads one field with parse, which turns its JSON into a value
// or describes why it cannot ("" when it can). ok is false, with the zero
// value, when the field is absent, null or refused; a refusal, and a
// missing required field, are recorded as problems.
func readField[T any](f *fieldReader, name string, required bool, parse func(json.RawMessage) (T, string)) (T, bool) {
	var zero T
	raw, ok := f.raw(name, required)
	if !ok {
		return zero, false
	}
	v, desc := parse(raw)
	if desc != "" {
		f.fail(name, desc)
		return zero, false
	}
	return v, true
}

// unknown lists fields nothing asked for, in body order.
func (f *fieldReader) unknown() []ErrorDetail {
	var out []ErrorDetail
	for _, k := range f.obj.order {
		if !f.isUsed(k) {
			out = append(out, ErrorDetail{Location: LocationBody, Name: k, Description: "unknown field"})
		}
	}
	return out
}

// requireOneOf rejects a body that names none of the fields (a PATCH that
// would change nothing) when nothing else is wrong with it already.
func (f *fieldReader) requireOneOf(names ...string) {
	for _, n := range names {
		if raw, ok := f.obj.fields[n]; ok && string(raw) != "null" {
			return
		}
	}
	if len(f.errs) == 0 && len(f.unknown()) == 0 {
		f.fail("body", "give at least one of "+strings.Join(names, ", "))
	}
}

// Int64 reads an integer field. The literal is parsed with strconv, so
// values near 2^63 survive exactly; fractions and exponents are refused
// rather than rounded.
func (f *fieldReader) Int64(name string, required bool, min int64) fsm.OptInt64 {
	v, ok := readField(f, name, required, func(raw json.RawMessage) (int64, string) {
		v, desc := parseInt64Literal(string(raw))
		if desc == "" && v < min {
			desc = fmt.Sprintf("must be at least %d", min)
		}
		return v, desc
	})
	return fsm.OptInt64{Set: ok, V: v}
}

func parseInt64Literal(s string) (int64, string) {
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, "must be an integer"
	}
	if strings.ContainsAny(s, ".eE") {
		return 0, "must be an integer, not a fraction or exponent"
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, "out of range: must fit in a signed 64-bit integer"
		}
		return 0, "must be an integer"
	}
	return v, ""
}

// String reads a string field and checks it with check (which returns ""
// when the value is acceptable).
func (f *fieldReader) String(name string, required bool, check func(string) string) fsm.OptString {
	v, ok := readField(f, name, required, func(raw json.RawMessage) (string, string) {
		if s, ok := plainJSONString(raw); ok {
			if check == nil {
				return s, ""
			}
			return s, check(s)
		}
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return "", "must be a string"
		}
		if check == nil {
			return s, ""
		}
		return s, check(s)
	})
	return fsm.OptString{Set: ok, V: v}
}

// plainJSONString decodes a JSON string of printable ASCII without
// escapes, which is its own text; ok is false for any other raw value
// (json.Unmarshal decodes those).
func plainJSONString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(inner), true
}

// Bool reads a boolean field.
func (f *fieldReader) Bool(name string) fsm.OptBool {
	v, ok := readField(f, name, false, func(raw json.RawMessage) (bool, string) {
		switch string(raw) {
		case "true":
			return true, ""
		case "false":
			return false, ""
		}
		return false, "must be a boolean"
	})
	return fsm.OptBool{Set: ok, V: v}
}

// maxReleaseRatePlaces bounds release_rate's precision so that the state
// machine's exact ceil(capacity × rate) stays in small integers.
const maxReleaseRatePlaces = 9

// ReleaseRate reads release_rate as a JSON number and returns it as the
// canonical decimal text the state machine computes with exactly.
func (f *fieldReader) ReleaseRate(name string) fsm.OptString {
	text, ok := readField(f, name, false, func(raw json.RawMessage) (string, string) {
		return canonicalReleaseRate(string(raw))
	})
	if !ok {
		return fsm.OptString{}
	}
	if f.canon == nil {
		f.canon = map[string]any{}
	}
	f.canon[name] = json.Number(text)
	return fsm.SomeString(text)
}

func canonicalReleaseRate(literal string) (string, string) {
	if literal == "" || !(literal[0] == '-' || (literal[0] >= '0' && literal[0] <= '9')) {
		return "", "must be a number"
	}
	if len(literal) > 64 {
		// big.Rat would happily expand 1e-100000000; refuse before parsing.
		return "", "must be a decimal with at most 9 places"
	}
	if i := strings.IndexAny(literal, "eE"); i >= 0 {
		exp, err := strconv.Atoi(literal[i+1:])
		if err != nil || exp < -40 || exp > 40 {
			return "", "must be a decimal with at most 9 places"
		}
	}
	r, ok := new(big.Rat).SetString(literal)
	if !ok {
		return "", "must be a number"
	}
	if r.Sign() <= 0 || r.Cmp(big.NewRat(1, 1)) > 0 {
		return "", "must be greater than 0 and at most 1"
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt64(1_000_000_000))
	if !scaled.IsInt() {
		return "", "must be a decimal with at most 9 places"
	}
	text := r.FloatString(maxReleaseRatePlaces)
	text = strings.TrimRight(text, "0")
	text = strings.TrimSuffix(text, ".")
	return text, ""
}
