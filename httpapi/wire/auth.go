package wire

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// HasBearerToken reports whether r carries "Authorization: Bearer <t>" with
// t one of want (empty entries never match). Tokens are compared as
// digests in constant time, so neither their content nor their length
// leaks through timing. The API and the members' internal endpoints
// (cluster/routing) check tokens with it, so both accept exactly the same.
func HasBearerToken(r *http.Request, want ...string) bool {
	got, ok := BearerToken(r)
	if !ok {
		return false
	}
	match := 0
	gotSum := sha256.Sum256([]byte(got))
	for _, w := range want {
		if w == "" {
			continue
		}
		wantSum := sha256.Sum256([]byte(w))
		match |= subtle.ConstantTimeCompare(gotSum[:], wantSum[:])
	}
	return match == 1
}

// BearerToken is the token of r's "Authorization: Bearer <t>", if any.
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
