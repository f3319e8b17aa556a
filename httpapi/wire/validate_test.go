package wire

import (
	"strings"
	"testing"
)

func TestFieldRules(t *testing.T) {
	cases := []struct {
		rule     string
		check    func(string) string
		accepted []string
		refused  []string
	}{
		{"service", CheckServiceName,
			[]string{"sync-1.5"},
			[]string{"sync", "sync-1!5", "s-" + strings.Repeat("x", 29)}},
		{"email", CheckEmail,
			[]string{"a@example.com"},
			[]string{"", "a/b@example.com", "a\x01b"}},
		{"client state", CheckClientState,
			[]string{"", "0a.b_c-d"},
			[]string{strings.Repeat("a", 33), "a b"}},
		{"node URL", CheckNodeURL,
			[]string{"https://sync-1.example.com"},
			[]string{"ftp://sync-1.example.com", "https://", "https://a b", "https://" + strings.Repeat("a", 57)}},
		{"pattern", CheckPattern,
			[]string{"{node}/1.5/{uid}"},
			[]string{""}},
		{"idempotency key", CheckIdempotencyKey,
			[]string{"k 1"},
			[]string{strings.Repeat("k", 129), "clé"}},
	}
	for _, tc := range cases {
		for _, v := range tc.accepted {
			if problem := tc.check(v); problem != "" {
				t.Errorf("%s %q refused: %s", tc.rule, v, problem)
			}
		}
		for _, v := range tc.refused {
			if tc.check(v) == "" {
				t.Errorf("%s %q accepted", tc.rule, v)
			}
		}
	}
}
