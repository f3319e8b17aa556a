package fsm

import "fmt"

// Validation repeats what the HTTP layer checks: the log is the source of
// truth and may be written by any client of the store, so the fsm must
// never store a value that breaks the data model.

const (
	maxServiceName    = 30
	maxPattern        = 128
	maxNodeURL        = 64
	maxEmail          = 255
	maxClientState    = 32
	maxIdempotencyKey = 128
	rateScale         = 1_000_000_000 // release rates have at most 9 decimals
)

func badRequest(field, format string, args ...any) *Error {
	return &Error{Status: StatusBadRequest, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func notFound(field, format string, args ...any) *Error {
	return &Error{Status: StatusNotFound, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func conflict(field, format string, args ...any) *Error {
	return &Error{Status: StatusConflict, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Byte classes as tables: validation runs on every command's emails and
// client states.
var nameBytes, printableBytes, emailBytes [256]bool

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		nameBytes[c] = b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
		printableBytes[c] = b >= 0x20 && b <= 0x7e // printable ASCII, space included
		emailBytes[c] = printableBytes[c] && b != '/'
	}
}

func isNameByte(c byte) bool  { return nameBytes[c] }
func isPrintable(c byte) bool { return printableBytes[c] }

func validServiceName(name string) bool {
	if len(name) < 1 || len(name) > maxServiceName {
		return false
	}
	dash := false
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return false
		}
		dash = dash || name[i] == '-'
	}
	return dash
}

func checkServiceName(name string) *Error {
	if !validServiceName(name) {
		return badRequest("service", "service name must be 1-%d characters of [A-Za-z0-9._-] containing '-'", maxServiceName)
	}
	return nil
}

func checkPattern(p string) *Error {
	if len(p) < 1 || len(p) > maxPattern {
		return badRequest("pattern", "pattern must be 1-%d characters", maxPattern)
	}
	for i := 0; i < len(p); i++ {
		if !isPrintable(p[i]) {
			return badRequest("pattern", "pattern must be printable ASCII")
		}
	}
	return nil
}

// parseRate parses a release rate written as digits[.digits] with at most
// 9 decimals, 0 < r ≤ 1, into units of 1e-9. Exact: no floating point.
func parseRate(text string) (int64, bool) {
	i := 0
	var whole int64
	digits := 0
	for i < len(text) && text[i] >= '0' && text[i] <= '9' {
		if whole > 1 { // already out of range; stop before any overflow
			return 0, false
		}
		whole = whole*10 + int64(text[i]-'0')
		i++
		digits++
	}
	if digits == 0 {
		return 0, false
	}
	var frac int64
	scale := int64(rateScale)
	if i < len(text) {
		if text[i] != '.' {
			return 0, false
		}
		i++
		fracDigits := 0
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			if fracDigits == 9 {
				return 0, false
			}
			scale /= 10
			frac += int64(text[i]-'0') * scale
			i++
			fracDigits++
		}
		if fracDigits == 0 || i != len(text) {
			return 0, false
		}
	}
	nano := whole*rateScale + frac
	if nano <= 0 || nano > rateScale {
		return 0, false
	}
	return nano, true
}

func checkRate(text string) (int64, *Error) {
	nano, ok := parseRate(text)
	if !ok {
		return 0, badRequest("release_rate", "release_rate must be a decimal 0 < r <= 1 with at most 9 decimals, got %q", text)
	}
	return nano, nil
}

func checkNodeURL(field, url string) *Error {
	if len(url) < 1 || len(url) > maxNodeURL {
		return badRequest(field, "node must be 1-%d characters", maxNodeURL)
	}
	for i := 0; i < len(url); i++ {
		if !isPrintable(url[i]) {
			return badRequest(field, "node must be printable ASCII")
		}
	}
	return nil
}

func checkEmail(email string) *Error {
	if len(email) < 1 || len(email) > maxEmail {
		return badRequest("email", "email must be 1-%d bytes", maxEmail)
	}
	for i := 0; i < len(email); i++ {
		if !emailBytes[email[i]] {
			return badRequest("email", "email must be printable ASCII without '/'")
		}
	}
	return nil
}

func checkClientState(cs OptString) *Error {
	if !cs.Set {
		return nil
	}
	if len(cs.V) > maxClientState {
		return badRequest("client_state", "client_state must be at most %d characters", maxClientState)
	}
	for i := 0; i < len(cs.V); i++ {
		if !isNameByte(cs.V[i]) {
			return badRequest("client_state", "client_state must match [A-Za-z0-9._-]{0,32}")
		}
	}
	return nil
}

// ValidClientState reports whether cs is a client state the data model
// allows ([A-Za-z0-9._-]{0,32}), that is one a stored record can hold.
// Callers outside the state machine (the purge job, reading records over
// HTTP) check it before deriving anything from a client state.
func ValidClientState(cs string) bool { return checkClientState(SomeString(cs)) == nil }

func checkNonNegative(field string, v OptInt64) *Error {
	if v.Set && v.V < 0 {
		return badRequest(field, "%s must be >= 0", field)
	}
	return nil
}

func checkIdempotencyKey(key string) *Error {
	if len(key) > maxIdempotencyKey {
		return badRequest("Idempotency-Key", "Idempotency-Key must be 1-%d printable characters", maxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if !isPrintable(key[i]) {
			return badRequest("Idempotency-Key", "Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

// firstError returns the first non-nil error, so a command's checks read as
// one ordered list.
func firstError(errs ...*Error) *Error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
