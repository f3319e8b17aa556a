package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/internal/launch"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestVersionStampedByLdflags: the variables the Makefile stamps are the
// ones the binary reads, and /__version__ answers what was stamped.
func TestVersionStampedByLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs a real member")
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	ldflags := regexp.MustCompile(`(?m)^LDFLAGS\s*:=.*$`).Find(makefile)
	for _, v := range []string{"main.version=", "main.commit=", "main.build="} {
		if !regexp.MustCompile(`-X '?` + regexp.QuoteMeta(v)).Match(ldflags) {
			t.Errorf("Makefile LDFLAGS does not stamp %s: %s", v, ldflags)
		}
	}

	bin := filepath.Join(t.TempDir(), "wimms")
	build := exec.Command(launch.GoTool(), "build", "-o", bin, "-ldflags",
		"-X main.version=v9.8.7 -X main.commit=0123abc -X 'main.build=https://ci.example.com/build/42'", ".")
	build.Env = launch.GoEnv("CGO_ENABLED=0")
	if out, code := testutil.Run(t, build); code != 0 {
		t.Fatalf("go build: exit status %d\n%s", code, out)
	}
	m := newMember(t, "v1", "zone-a")
	m.Bin = bin
	m.start()
	m.waitReady(30 * time.Second)
	var got httpapi.VersionInfo
	a := expect(t, call(t, "GET", m.url("/__version__"), nil), 200, "GET /__version__")
	if err := json.Unmarshal([]byte(a.raw), &got); err != nil {
		t.Fatal(err)
	}
	want := httpapi.VersionInfo{Source: httpapi.DefaultSource, Version: "v9.8.7", Commit: "0123abc", Build: "https://ci.example.com/build/42"}
	if got != want {
		t.Fatalf("/__version__ = %+v, want %+v", got, want)
	}
	hb := expect(t, call(t, "GET", m.url("/__heartbeat__"), nil), 200, "GET /__heartbeat__ of a ready member")
	if hb.str("status") != "ok" {
		t.Fatalf("heartbeat: %s", hb.raw)
	}
}
