package launch

import (
	"slices"
	"strings"
	"testing"
)

// A nested go command must not take the outer `go test`'s GOFLAGS (a -run
// there would select no test in the nested one).
func TestGoEnvDropsGOFLAGS(t *testing.T) {
	t.Setenv("GOFLAGS", "-run=^$")
	env := GoEnv("CGO_ENABLED=0")
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOFLAGS=") {
			t.Fatalf("GoEnv kept %s", kv)
		}
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Fatalf("GoEnv dropped the extra variable: %v", env)
	}
}
