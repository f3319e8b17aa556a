package wire

import (
	"strings"
	"testing"
)

func TestFieldRules(t *testing.T) {
	cases := []struct {
		rule  string
		check func(string) string
		value string
		ok    bool
	}{
		{"service", CheckServiceName, "sync-1.5", true},
		{"service", CheckServiceName, "sync", false},
		{"service", CheckServiceName, "sync-1!5", false},
		{"service", CheckServiceName, "s-" + strings.Repeat("x", 29), false},
		{"email", CheckEmail, "a@example.com", true},
		{"email", CheckEmail, "", false},
		{"email", CheckEmail, "a/b@example.com", false},
		{"email", CheckEmail, "a\x01b", false},
		{"client state", CheckClientState, "", true},
		{"client state", CheckClientState, "0a.b_c-d", true},
		{"client state", CheckClientState, strings.Repeat("a", 33), false},
		{"client state", CheckClientState, "a b", false},
		{"node URL", CheckNodeURL, "https://sync-1.example.com", true},
		{"node URL", CheckNodeURL, "ftp://sync-1.example.com", false},
		{"node URL", CheckNodeURL, "https://", false},
		{"node URL", CheckNodeURL, "https://a b", false},
		{"node URL", CheckNodeURL, "https://" + strings.Repeat("a", 57), false},
		{"pattern", CheckPattern, "{node}/1.5/{uid}", true},
		{"pattern", CheckPattern, "", false},
		{"idempotency key", CheckIdempotencyKey, "k 1", true},
		{"idempotency key", CheckIdempotencyKey, strings.Repeat("k", 129), false},
		{"idempotency key", CheckIdempotencyKey, "clé", false},
	}
	for _, tc := range cases {
		problem := tc.check(tc.value)
		if tc.ok && problem != "" {
			t.Errorf("%s %q refused: %s", tc.rule, tc.value, problem)
		}
		if !tc.ok && problem == "" {
			t.Errorf("%s %q accepted", tc.rule, tc.value)
		}
	}
}
