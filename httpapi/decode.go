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
)

// MaxBodyBytes is the largest request body accepted (docs/api.md: over 64 KiB is
// 400 bad-request).
const MaxBodyBytes = 64 << 10

// jsonObject is a request body split into its top-level members. Bodies are
// flat objects of scalars, so splitting first lets every problem be reported
// under the field's own name, which json.Decoder's errors for unknown fields
// do not offer in a stable form.
type jsonObject struct {
	fields map[string]json.RawMessage
	order  []string // keys in body order, so unknown fields are reported deterministically
}

// parseObject reads exactly one JSON object from body. An empty body is an
// empty object. Duplicate keys and anything after the object are rejected:
// both would let two readers of the same bytes disagree about the request.
func parseObject(body []byte) (*jsonObject, *ErrorDetail) {
	obj := &jsonObject{fields: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(body)) == 0 {
		return obj, nil
	}
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
	obj  *jsonObject
	used map[string]bool
	errs []ErrorDetail
	// canon holds canonical values of fields whose JSON spelling may vary
	// without changing meaning, for the request hash.
	canon map[string]any
}

func newFieldReader(obj *jsonObject) *fieldReader {
	return &fieldReader{obj: obj, used: map[string]bool{}, canon: map[string]any{}}
}

func (f *fieldReader) fail(name, desc string) {
	f.errs = append(f.errs, ErrorDetail{Location: LocationBody, Name: name, Description: desc})
}

// raw returns the field's JSON and whether it is present and not null. A
// null optional field is treated as absent; a required one as missing.
func (f *fieldReader) raw(name string, required bool) (json.RawMessage, bool) {
	f.used[name] = true
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
		if !f.used[k] {
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
