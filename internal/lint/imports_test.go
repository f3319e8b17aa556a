package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// module is this module's import path.
const module = "github.com/wimms-dev/wimms"

// listedPackage is what `go list -json` says of one package.
type listedPackage struct {
	ImportPath  string
	Imports     []string // direct, non-test files
	Deps        []string // every package the non-test files need, transitively
	TestImports []string // direct, the package's own _test.go files
}

// listPackages runs `go list -json` over the module from root.
func listPackages(t *testing.T, root string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no package")
	}
	return pkgs
}

// rel is an import path relative to the module ("" for another module's).
func rel(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// within reports whether the module-relative path p is dir or below it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// importViolations checks the direction of the module's dependencies (see
// docs/architecture.md, "Dependencies"); each violation is one line.
//   - fsm and httpapi/wire are leaves: nothing of the module, not even
//     transitively;
//   - only store and its sub-packages import hashicorp/raft and its
//     companions (raft-wal, raft-boltdb, …) in non-test files: the one
//     owner of the log;
//   - cluster and its sub-packages never reach httpapi (the HTTP layer
//     calls them through its own interfaces), neither in their code nor
//     in their white-box tests; httpapi/wire is a leaf of its own and
//     allowed; and cluster/routing never imports the membership layer
//     above it.
func importViolations(pkgs []listedPackage) []string {
	var out []string
	for _, p := range pkgs {
		self, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		if self == "fsm" || self == "httpapi/wire" {
			for _, d := range p.Deps {
				if r, ok := rel(d); ok {
					out = append(out, fmt.Sprintf("%s is a leaf but depends on %s", self, r))
				}
			}
		}
		if !within(self, "store") {
			for _, i := range p.Imports {
				if strings.HasPrefix(i, "github.com/hashicorp/raft") {
					out = append(out, fmt.Sprintf("%s imports %s: only store talks to Raft", self, i))
				}
			}
		}
		if within(self, "cluster") {
			out = append(out, clusterViolations(self, p)...)
		}
	}
	return out
}

// clusterViolations: cluster/... reaches no httpapi package but the wire
// leaf, and the router does not import membership.
func clusterViolations(self string, p listedPackage) []string {
	var out []string
	seen := map[string]bool{}
	for _, list := range [][]string{p.Deps, p.TestImports} {
		for _, d := range list {
			r, ok := rel(d)
			if !ok || seen[r] {
				continue
			}
			seen[r] = true
			if within(r, "httpapi") && r != "httpapi/wire" {
				out = append(out, fmt.Sprintf("%s depends on %s: cluster never imports httpapi", self, r))
			}
			if within(self, "cluster/routing") && r == "cluster" {
				out = append(out, fmt.Sprintf("%s depends on cluster: routing sits below membership", self))
			}
		}
	}
	return out
}

// TestImportDirection: the module's dependencies point one way, from the
// binary down to the leaves (docs/architecture.md).
func TestImportDirection(t *testing.T) {
	pkgs := listPackages(t, moduleRoot(t))
	for _, v := range importViolations(pkgs) {
		t.Error(v)
	}
	// The check must see the packages it rules on, or it passes vacuously.
	found := map[string]bool{}
	for _, p := range pkgs {
		if r, ok := rel(p.ImportPath); ok {
			found[r] = true
		}
	}
	for _, want := range []string{"fsm", "httpapi/wire", "store", "cluster", "cluster/routing", "httpapi", "cmd/wimms"} {
		if !found[want] {
			t.Errorf("go list did not report %s", want)
		}
	}
}

// TestImportViolationsAreFound: each rule of importViolations fires on a
// package that breaks it and stays quiet on one that keeps it.
func TestImportViolationsAreFound(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	bad := []listedPackage{
		{ImportPath: m("fsm"), Deps: []string{"sort", m("internal/ctxtime")}},
		{ImportPath: m("httpapi/wire"), Deps: []string{m("fsm")}},
		{ImportPath: m("cmd/wimms"), Imports: []string{"github.com/hashicorp/raft"}},
		{ImportPath: m("jepsen"), Imports: []string{"github.com/hashicorp/raft-wal"}},
		{ImportPath: m("cluster"), Deps: []string{m("httpapi"), m("httpapi/wire")}},
		{ImportPath: m("cluster/routing"), TestImports: []string{m("httpapi/client")}, Deps: []string{m("cluster")}},
	}
	want := []string{
		"fsm is a leaf but depends on internal/ctxtime",
		"httpapi/wire is a leaf but depends on fsm",
		"cmd/wimms imports github.com/hashicorp/raft: only store talks to Raft",
		"jepsen imports github.com/hashicorp/raft-wal: only store talks to Raft",
		"cluster depends on httpapi: cluster never imports httpapi",
		"cluster/routing depends on cluster: routing sits below membership",
		"cluster/routing depends on httpapi/client: cluster never imports httpapi",
	}
	if got := importViolations(bad); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	good := []listedPackage{
		{ImportPath: m("fsm"), Deps: []string{"sort", "github.com/other/mod"}},
		{ImportPath: m("store"), Imports: []string{"github.com/hashicorp/raft", m("fsm")}},
		{ImportPath: m("store/sub"), Imports: []string{"github.com/hashicorp/raft-wal"}},
		{ImportPath: m("cluster"), Deps: []string{m("httpapi/wire"), m("store"), m("cluster/routing")}},
		{ImportPath: m("httpapi"), Deps: []string{m("store"), m("httpapi/wire")}},
	}
	if got := importViolations(good); len(got) != 0 {
		t.Errorf("violations in a module that keeps the rules:\n%s", strings.Join(got, "\n"))
	}
}
