package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestCheckIdentity(t *testing.T) {
	three := raft.Configuration{Servers: []raft.Server{
		{ID: "m1", Address: "10.0.0.1:8081"}, {ID: "m2", Address: "10.0.0.2:8081"}, {ID: "m3", Address: "10.0.0.3:8081"},
	}}
	for _, c := range []struct {
		name, id string
		joining  bool
		cfg      raft.Configuration
		refused  bool
	}{
		{"no configuration yet", "m9", false, raft.Configuration{}, false},
		{"a member of it", "m2", false, three, false},
		{"not a member, nobody to add it", "m9", false, three, true},
		{"not a member, asking to join", "m9", true, three, false},
	} {
		err := checkIdentity("/data", c.id, c.joining, c.cfg)
		if (err != nil) != c.refused {
			t.Fatalf("%s: err %v, want refused=%v", c.name, err, c.refused)
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrWrongIdentity) {
			t.Fatalf("%s: %v is not ErrWrongIdentity", c.name, err)
		}
		for _, want := range []string{"/data", `"m9"`, "m1 at 10.0.0.1:8081", "m3 at 10.0.0.3:8081"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: %q does not name %s", c.name, err, want)
			}
		}
	}
}
