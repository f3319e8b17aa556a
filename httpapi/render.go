package httpapi

import (
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// The API's objects are declared once, in package wire; these functions
// render the state machine's values into them. Nullable values are pointers
// so that null is explicit, never omitted.

func nullableInt64(v int64) *int64 {
	if v == fsm.Null {
		return nil
	}
	return &v
}

func toServiceJSON(s fsm.Service) wire.Service {
	return wire.Service{
		ID: s.ID, Service: s.Name, Pattern: s.Pattern, ReleaseRate: wire.Decimal(s.ReleaseRate),
		AllowNewUsers: s.AllowNewUsers, Spread: s.Spread,
	}
}

func toNodeJSON(n fsm.Node) wire.Node {
	return wire.Node{
		ID: n.ID, Service: n.Service, Node: n.URL, Capacity: n.Capacity, Available: n.Available,
		CurrentLoad: n.CurrentLoad, Downed: n.Downed, Backoff: n.Backoff,
	}
}

func toUserJSON(u fsm.User) wire.User {
	out := wire.User{
		UID: u.UID, Service: u.Service, Email: u.Email, NodeID: u.NodeID,
		Generation: u.Generation, KeysChangedAt: nullableInt64(u.KeysChangedAt),
		ClientState: u.ClientState, OldClientStates: u.OldClientStates,
		CreatedAt: u.CreatedAt, ReplacedAt: nullableInt64(u.ReplacedAt), FirstSeenAt: u.FirstSeenAt,
	}
	// NodeURL "" is the fsm's "node was removed"; then there is no endpoint
	// to fill in either.
	if u.NodeURL != "" {
		node, endpoint := u.NodeURL, u.APIEndpoint
		out.Node, out.APIEndpoint = &node, &endpoint
	}
	if out.OldClientStates == nil {
		out.OldClientStates = []string{}
	}
	return out
}

func toRecordJSON(r fsm.Record) wire.Record {
	out := wire.Record{
		UID: r.UID, Email: r.Email, NodeID: r.NodeID, Downed: r.NodeDowned,
		Generation: r.Generation, KeysChangedAt: nullableInt64(r.KeysChangedAt),
		ClientState: r.ClientState, CreatedAt: r.CreatedAt, ReplacedAt: nullableInt64(r.ReplacedAt),
	}
	if r.NodeURL != "" {
		node := r.NodeURL
		out.Node = &node
	}
	return out
}

func toRecordsJSON(rs []fsm.Record) []wire.Record {
	out := make([]wire.Record, 0, len(rs))
	for _, r := range rs {
		out = append(out, toRecordJSON(r))
	}
	return out
}

// The user object is the answer of the hot routes (a lookup, a login), so
// it is written by hand into a pooled buffer instead of through
// encoding/json's reflection. The bytes are exactly json.Marshal's of
// toUserJSON's wire.User (TestAppendUserMatchesEncodingJSON): same field
// order, nulls, escapes (including <, >, & and U+2028/U+2029, and invalid
// UTF-8 as U+FFFD).

// appendUserJSON appends the JSON object of u (wire.User), or of the login
// answer (wire.LoginResult) when login is set.
func appendUserJSON(b []byte, u *fsm.User, login bool, fxaKid string) []byte {
	b = append(b, `{"uid":`...)
	b = strconv.AppendInt(b, u.UID, 10)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, u.Service)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, u.Email)
	b = append(b, `,"node_id":`...)
	b = strconv.AppendInt(b, u.NodeID, 10)
	// NodeURL "" is the fsm's "node was removed" (toUserJSON).
	if u.NodeURL != "" {
		b = append(b, `,"node":`...)
		b = appendJSONString(b, u.NodeURL)
		b = append(b, `,"api_endpoint":`...)
		b = appendJSONString(b, u.APIEndpoint)
	} else {
		b = append(b, `,"node":null,"api_endpoint":null`...)
	}
	b = append(b, `,"generation":`...)
	b = strconv.AppendInt(b, u.Generation, 10)
	b = append(b, `,"keys_changed_at":`...)
	b = appendNullableInt(b, u.KeysChangedAt)
	b = append(b, `,"client_state":`...)
	b = appendJSONString(b, u.ClientState)
	b = append(b, `,"old_client_states":[`...)
	for i, cs := range u.OldClientStates {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, cs)
	}
	b = append(b, `],"created_at":`...)
	b = strconv.AppendInt(b, u.CreatedAt, 10)
	b = append(b, `,"replaced_at":`...)
	b = appendNullableInt(b, u.ReplacedAt)
	b = append(b, `,"first_seen_at":`...)
	b = strconv.AppendInt(b, u.FirstSeenAt, 10)
	if login {
		b = append(b, `,"fxa_kid":`...)
		b = appendJSONString(b, fxaKid)
	}
	return append(b, '}')
}

func appendNullableInt(b []byte, v int64) []byte {
	if v == fsm.Null {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, v, 10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as encoding/json writes a string with HTML
// escaping on (json.Marshal's default).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is pending, copied as is
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// answerBuf is a pooled buffer an answer is rendered into; it goes back
// to the pool once written (ResponseWriter.Write copies).
type answerBuf struct{ b []byte }

var answerPool = sync.Pool{New: func() any { return &answerBuf{b: make([]byte, 0, 1024)} }}

// maxPooledAnswer keeps a rare huge answer from pinning its buffer.
const maxPooledAnswer = 64 << 10

func getAnswerBuf() *answerBuf { return answerPool.Get().(*answerBuf) }

func putAnswerBuf(a *answerBuf) {
	if cap(a.b) > maxPooledAnswer {
		return
	}
	a.b = a.b[:0]
	answerPool.Put(a)
}
