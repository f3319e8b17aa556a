// Package docscheck holds only tests: the repository's Markdown (README.md,
// docs/*.md, every DESIGN.md) must not name a package path, a Go
// identifier, an alert or a wimms flag that no longer exists, and the maps
// a newcomer reads first (docs/architecture.md's tree and dependencies,
// README.md's layout) must list every package as the code has it. Docs
// drift silently when code moves (a renamed type, a package folded into
// another); these tests make the drift a failing build instead of a
// newcomer's wrong turn. A failure names the doc and the stale reference.
package docscheck

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

const modulePath = "github.com/wimms-dev/wimms"

// module is what the docs may refer to: package directories and the
// identifiers declared in them.
type module struct {
	root string
	// topDirs are the top-level directories that hold Go packages or the
	// docs; a path in a doc is checked only when it starts with one, so
	// shell paths (`/tmp/base`, `bin/wimms`, `d1/`) are left alone.
	topDirs map[string]bool
	// pkgDirs are the directories holding Go files, relative to the root.
	pkgDirs map[string]bool
	// words are the words inside the module's string literals and struct
	// tags: wire values such as `passwordChange` are named in the docs.
	words map[string]bool
	// flags are the long flag names the binary declares (any subcommand's,
	// in cmd/wimms or the command packages under cmd/internal).
	flags map[string]bool
	// imports maps a package directory to the module's packages its
	// non-test files import (every build tag's files together).
	imports map[string]map[string]bool
	// pkgs maps a package name (`store`, `wire`) to its declarations,
	// merged over every package of that name.
	pkgs map[string]*decls
	// types maps a type name to its methods and fields, over all packages,
	// so `Type.Method` can be checked without knowing the package.
	types map[string]map[string]bool
	// idents is every identifier declared anywhere in the module (top level,
	// methods, fields), including tests' benchmarks and fuzz targets, and
	// the alert names of deploy/prometheus/alerts.yml.
	idents map[string]bool
}

type decls struct {
	top     map[string]bool            // types, funcs, consts, vars
	members map[string]map[string]bool // type → methods and fields
}

func newDecls() *decls {
	return &decls{top: map[string]bool{}, members: map[string]map[string]bool{}}
}

func (d *decls) addMember(typ, name string) {
	if d.members[typ] == nil {
		d.members[typ] = map[string]bool{}
	}
	d.members[typ][name] = true
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*module{}
)

// loadModule parses every Go file under root (tests included: benchmarks
// and fuzz targets are named in the docs) for its declarations, once per
// test binary.
func loadModule(t *testing.T, root string) *module {
	t.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if m := loaded[root]; m != nil {
		return m
	}
	m := &module{
		root:    root,
		topDirs: map[string]bool{"docs": true},
		pkgDirs: map[string]bool{},
		imports: map[string]map[string]bool{},
		flags:   map[string]bool{},
		words:   map[string]bool{},
		pkgs:    map[string]*decls{},
		types:   map[string]map[string]bool{},
		idents:  map[string]bool{},
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		m.topDirs[strings.Split(filepath.ToSlash(rel), "/")[0]] = true
		dir := filepath.ToSlash(filepath.Dir(rel))
		m.pkgDirs[dir] = true
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := f.Name.Name
		if strings.HasSuffix(pkg, "_test") {
			pkg = strings.TrimSuffix(pkg, "_test")
		}
		if m.pkgs[pkg] == nil {
			m.pkgs[pkg] = newDecls()
		}
		if m.imports[dir] == nil {
			m.imports[dir] = map[string]bool{}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			// This package's literals are the fake docs of its own tests.
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && dir != "internal/docscheck" {
				for _, w := range wordRE.FindAllString(lit.Value, -1) {
					m.words[w] = true
				}
			}
			return true
		})
		if strings.HasPrefix(dir, "cmd/") && !strings.HasSuffix(name, "_test.go") {
			m.addFlags(f)
		}
		if !strings.HasSuffix(name, "_test.go") {
			for _, imp := range f.Imports {
				if p, ok := strings.CutPrefix(strings.Trim(imp.Path.Value, `"`), modulePath+"/"); ok {
					m.imports[dir][p] = true
				}
			}
		}
		m.addFile(m.pkgs[pkg], f)
		return nil
	})
	if err != nil {
		t.Fatalf("parse the module under %s: %v", root, err)
	}
	alerts, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatalf("read the alert rules: %v", err)
	}
	for _, sm := range alertRE.FindAllStringSubmatch(string(alerts), -1) {
		m.idents[sm[1]] = true
	}
	loaded[root] = m
	return m
}

// declares reports whether package pkg declares name at top level or as a
// method or field of one of its types: docs write `store.HadState()` for
// "the store's HadState".
func (d *decls) declares(name string) bool {
	if d.top[name] {
		return true
	}
	for _, members := range d.members {
		if members[name] {
			return true
		}
	}
	return false
}

func (m *module) addFile(d *decls, f *ast.File) {
	member := func(typ, name string) {
		d.addMember(typ, name)
		if m.types[typ] == nil {
			m.types[typ] = map[string]bool{}
		}
		m.types[typ][name] = true
		m.idents[name] = true
	}
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			if decl.Recv != nil && len(decl.Recv.List) == 1 {
				member(recvType(decl.Recv.List[0].Type), decl.Name.Name)
				continue
			}
			d.top[decl.Name.Name] = true
			m.idents[decl.Name.Name] = true
		case *ast.GenDecl:
			for _, spec := range decl.Specs {
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					d.top[spec.Name.Name] = true
					m.idents[spec.Name.Name] = true
					if m.types[spec.Name.Name] == nil {
						m.types[spec.Name.Name] = map[string]bool{}
					}
					addFields(spec.Name.Name, spec.Type, member)
				case *ast.ValueSpec:
					for _, n := range spec.Names {
						d.top[n.Name] = true
						m.idents[n.Name] = true
					}
				}
			}
		}
	}
}

// flagMethods are the flag-set methods the binary declares flags with; the
// first string literal among a call's arguments is the flag's name.
var flagMethods = map[string]bool{}

func init() {
	for _, typ := range []string{"String", "Int", "Bool", "Duration", "Int64", "Uint64", "Float64", "StringSlice", "StringArray", "Uint", ""} {
		for _, suffix := range []string{"", "Var", "P", "VarP"} {
			flagMethods[typ+suffix] = true
		}
	}
	delete(flagMethods, "")
}

// addFlags records the flag names f declares.
func (m *module) addFlags(f *ast.File) {
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !flagMethods[sel.Sel.Name] {
			return true
		}
		for _, arg := range call.Args {
			if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				m.flags[strings.Trim(lit.Value, "`\"")] = true
				break
			}
		}
		return true
	})
}

// flagPrefix: `--tls-*` stands for the flags that start with `tls-`.
func (m *module) flagPrefix(flag string) bool {
	if !strings.HasSuffix(flag, "-") {
		return false
	}
	for f := range m.flags {
		if strings.HasPrefix(f, flag) {
			return true
		}
	}
	return false
}

// addFields records a struct's fields (embedded ones by their type name)
// and an interface's methods as members of typ.
func addFields(typ string, expr ast.Expr, member func(typ, name string)) {
	var list *ast.FieldList
	switch e := expr.(type) {
	case *ast.StructType:
		list = e.Fields
	case *ast.InterfaceType:
		list = e.Methods
	default:
		return
	}
	for _, field := range list.List {
		if len(field.Names) == 0 {
			if name := recvType(field.Type); name != "" {
				member(typ, name)
			}
			continue
		}
		for _, n := range field.Names {
			member(typ, n.Name)
		}
	}
}

// recvType names the type of a receiver or embedded field: `*T`, `T[K]`,
// `pkg.T` all give `T`.
func recvType(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvType(e.X)
	case *ast.IndexExpr:
		return recvType(e.X)
	case *ast.IndexListExpr:
		return recvType(e.X)
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.Ident:
		return e.Name
	}
	return ""
}

var (
	// A path that starts at a word boundary, `./` or `../` (a Markdown link
	// from a nested doc); one preceded by `/` or `.` otherwise is part of a
	// URL or an absolute path (`/internal/v1/relay`, `/tmp/x`).
	pathRE = regexp.MustCompile(`(?:^|[^\w/.\-]|\.\.?/)([a-z][\w\-]*(?:/[\w.*\-]+)+/?)`)
	// pkg.Ident or pkg.Type.Member, pkg lower case.
	qualRE = regexp.MustCompile(`(?:^|[^\w./])([a-z][a-z0-9]*)\.([A-Z]\w*)(?:\.(\w+))?`)
	// Type.Member with an exported type, outside a package qualifier.
	typeMemberRE = regexp.MustCompile("`(?:\\*)?([A-Z]\\w*)\\.(\\w+)(?:\\(\\))?`")
	// A bare backquoted identifier in CamelCase with at least two words
	// (`EstablishLeadership`, `Forwarder` is one word and is listed in
	// knownGone instead).
	bareRE = regexp.MustCompile("`([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+)(?:\\(\\))?(?:/[^`\\s]*)?`")
	wordRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	// a backquoted unexported name with at least two words: `serveLogin`
	lowerRE = regexp.MustCompile("`([a-z][a-z0-9]*[A-Z]\\w*)(?:\\(\\))?`")
	fence   = regexp.MustCompile("(?ms)^```.*?^```")
	alertRE = regexp.MustCompile(`(?m)^\s*- alert: (\w+)`)
	// a path that ends in an identifier: internal/tlsconf.Holder
	pathIdentRE = regexp.MustCompile(`^(.*)\.([A-Z]\w*)$`)
)

// external are backquoted names the docs use that belong to a dependency
// or the standard library, not to this module.
var external = map[string]bool{
	// hashicorp/raft, raft-wal and raft-boltdb
	"CommitTimeout": true, "StoreLogs": true, "NoFreelistSync": true, "NoSync": true,
	"BatchingFSM": true, "InstallSnapshot": true, "AppendEntries": true,
	"BatchApplyCh": true, "LogCommand": true, "VerifyLeader": true, "NotifyCh": true,
	"LeaderCommitIndex": true, "NewRaft": true, "RecoverCluster": true,
	"WithMetaStore": true,
	"appendEntries": true, "processLogs": true, // raft's unexported functions
	// memberlist
	"CleanupDeadServers": true,
	// the standard library
	"SetMemoryLimit": true, "DialTLSContext": true, "GetBody": true, "TryLock": true,
	"DisallowUnknownFields": true, "VerifyConnection": true,
	"MaxIdleConnsPerHost": true, "MaxConnsPerHost": true,
	// gorilla/mux
	"UseEncodedPath": true, "SkipClean": true,
	// mozsvc, the Python token server's library
	"DerivedSecrets": true,
}

var (
	// a backquoted span that starts with a flag: `--apply-timeout 10s`
	flagSpanRE = regexp.MustCompile("`--([a-z][a-z0-9-]*)")
	// a wimms command line in a code block, up to the end of the line
	wimmsLineRE = regexp.MustCompile(`(?m)\bwimms(?:-new|-base)?\s+[a-z].*$`)
	longFlagRE  = regexp.MustCompile(`(?:^|\s|=)--([a-z][a-z0-9-]*)`)
)

// externalFlags are flags of other programs that the docs show beside
// wimms' own in a backquoted span.
var externalFlags = map[string]bool{
	"help":    true,                         // cobra's own
	"no-deps": true, "force-recreate": true, // docker-compose
}

// docFlags returns the long flags a doc gives to wimms: backquoted spans
// that start with one, and every flag on a line that runs wimms.
func docFlags(text string) []string {
	var out []string
	for _, sm := range flagSpanRE.FindAllStringSubmatch(text, -1) {
		out = append(out, sm[1])
	}
	for _, line := range wimmsLineRE.FindAllString(text, -1) {
		for _, sm := range longFlagRE.FindAllStringSubmatch(line, -1) {
			out = append(out, sm[1])
		}
	}
	return out
}

// knownGone are single-word names that once were identifiers of this
// module; bare CamelCase of one word is too common in prose to check
// generally, so the removed ones are listed by name.
var knownGone = []string{"Forwarder"}

type finding struct {
	doc, what, why string
}

// checkDoc returns every stale reference in one document's text. docRel is
// the document's path relative to the module root.
func (m *module) checkDoc(docRel, text string) []finding {
	var out []finding
	add := func(what, why string) { out = append(out, finding{docRel, what, why}) }
	text = strings.ReplaceAll(text, modulePath+"/", " ")
	prose := fence.ReplaceAllString(text, "")

	for _, sm := range pathRE.FindAllStringSubmatch(text, -1) {
		p := strings.TrimRight(sm[1], ".")
		top := strings.SplitN(p, "/", 2)[0]
		if !m.topDirs[top] {
			continue
		}
		if im := pathIdentRE.FindStringSubmatch(p); im != nil {
			dir, name := im[1], im[2]
			if !m.exists(filepath.Dir(docRel), dir) {
				add(dir, "no such package directory")
			} else if d := m.pkgs[filepath.Base(dir)]; d == nil || !d.declares(name) {
				add(p, "package "+filepath.Base(dir)+" declares no "+name)
			}
			continue
		}
		if strings.Contains(p, "*") {
			if matches, _ := filepath.Glob(filepath.Join(m.root, p)); len(matches) == 0 {
				add(p, "no file matches this pattern")
			}
			continue
		}
		if !m.exists(filepath.Dir(docRel), p) {
			add(p, "no such package directory or file")
		}
	}

	for _, sm := range qualRE.FindAllStringSubmatch(text, -1) {
		pkg, name, member := sm[1], sm[2], sm[3]
		d := m.pkgs[pkg]
		if d == nil {
			continue // not a package of this module (raft., http., …)
		}
		ref := pkg + "." + name
		if !d.declares(name) {
			add(ref, "package "+pkg+" declares no "+name)
			continue
		}
		if member != "" && d.members[name] != nil && !d.members[name][member] {
			add(ref+"."+member, name+" has no method or field "+member)
		}
	}

	for _, sm := range typeMemberRE.FindAllStringSubmatch(prose, -1) {
		typ, member := sm[1], sm[2]
		members, ok := m.types[typ]
		if !ok {
			continue // an outside type (raft.Config's fields, …)
		}
		if !members[member] {
			add(typ+"."+member, typ+" has no method or field "+member)
		}
	}

	for _, sm := range bareRE.FindAllStringSubmatch(prose, -1) {
		name := sm[1]
		if !m.idents[name] && !external[name] {
			add(name, "no identifier of this name in the module")
		}
	}
	for _, sm := range lowerRE.FindAllStringSubmatch(prose, -1) {
		if name := sm[1]; !m.idents[name] && !m.words[name] && !external[name] {
			add(name, "no identifier or string of this name in the module")
		}
	}
	for _, flag := range docFlags(text) {
		if !m.flags[flag] && !externalFlags[flag] && !m.flagPrefix(flag) {
			add("--"+flag, "wimms declares no flag of this name")
		}
	}
	for _, name := range knownGone {
		if regexp.MustCompile(`(?:^|[^\w.])` + name + `\b`).MatchString(prose) {
			if !m.idents[name] {
				add(name, "removed from the module")
			}
		}
	}
	return out
}

// exists reports whether p names a file or directory, from the module root
// or from the directory of the doc that names it (a DESIGN.md's
// `internal/fake/` is its own package's).
func (m *module) exists(docDir, p string) bool {
	for _, base := range []string{m.root, filepath.Join(m.root, docDir)} {
		if _, err := os.Stat(filepath.Join(base, p)); err == nil {
			return true
		}
	}
	return false
}

// docs lists the Markdown files the check covers: README.md, docs/*.md and
// every DESIGN.md.
func docs(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel == "README.md" || d.Name() == "DESIGN.md" ||
			(strings.HasPrefix(rel, "docs/") && strings.HasSuffix(rel, ".md")) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list the docs: %v", err)
	}
	sort.Strings(out)
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module "+modulePath+"\n") {
		t.Fatalf("%s is not the module root (go.mod: %v)", root, err)
	}
	return root
}

// TestDocsNameOnlyWhatExists runs the check over the repository's docs.
func TestDocsNameOnlyWhatExists(t *testing.T) {
	root := moduleRoot(t)
	m := loadModule(t, root)
	files := docs(t, root)
	if len(files) < 10 {
		t.Fatalf("found only %d docs under %s: %v", len(files), root, files)
	}
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m.checkDoc(rel, string(b)) {
			t.Errorf("%s names `%s`: %s", f.doc, f.what, f.why)
		}
	}
}

// TestCheckDocCatchesStaleNames feeds the check fake docs against the real
// module: each stale name must be reported, each live one must not.
func TestCheckDocCatchesStaleNames(t *testing.T) {
	m := loadModule(t, moduleRoot(t))
	cases := []struct {
		name, doc string
		want      []string // the stale references, in order; nil: none
	}{
		{"live package path", "see `store/` and internal/launch and httpapi/wire", nil},
		{"live file", "batching lives in cluster/routing/relaybatch.go.", nil},
		{"path and live identifier", "cmd wires `internal/tlsconf.Holder`", nil},
		{"path and stale identifier", "cmd wires `internal/tlsconf.Registry`", []string{"internal/tlsconf.Registry"}},
		{"stale package path", "the bench was jepsen/bench once", []string{"jepsen/bench"}},
		{"stale nested path", "see [bench](../internal/nobench/DESIGN.md)", []string{"internal/nobench/DESIGN.md"}},
		{"URL path is not a package", "relayed with `POST /internal/v1/relay`", nil},
		{"module import path", "import github.com/wimms-dev/wimms/internal/gone", []string{"internal/gone"}},
		{"live qualified", "`store.Placement`, `routing.Router.Route`, `fsm.View.DecideLogin`", nil},
		{"method named through its package", "a restarted member (`store.HadState()`)", nil},
		{"stale qualified", "`store.Forwarder` decides", []string{"store.Forwarder"}},
		{"stale member", "`fsm.View.DecideEverything`", []string{"fsm.View.DecideEverything"}},
		{"outside package", "`raft.Apply` and `http.Transport`", nil},
		{"live type member", "`FSM.ApplyBatch` and `Store.Apply`", nil},
		{"stale type member", "`Store.ApplyTwice`", []string{"Store.ApplyTwice"}},
		{"bare live", "`EstablishLeadership` commits a no-op", nil},
		{"bare external", "raft's `CommitTimeout`", nil},
		{"alert name", "`WimmsNoLeader` fires", nil},
		{"stale alert name", "`WimmsLeaderless` fires", []string{"WimmsLeaderless"}},
		{"bare stale", "the `RelayPlanner` decides", []string{"RelayPlanner"}},
		{"unexported live", "`serveLogin` reads once; `loginPlacement()`", nil},
		{"unexported stale", "`loginTwiceFromRead` reads twice", []string{"loginTwiceFromRead"}},
		{"wire value", "the `passwordChange` event", nil},
		{"test and subtest", "`TestCheckDocCatchesStaleNames/bare_live`", nil},
		{"stale test and subtest", "`TestGoneAway/some_case`", []string{"TestGoneAway"}},
		{"known gone", "the Forwarder relays", []string{"Forwarder"}},
		{"code block bare names are shell", "```sh\n`FooBarBaz`\n```", nil},
		{"live flags", "`--apply-timeout 10s`, `--tls-*` and\n```sh\nbin/wimms server --id m1 --data-dir d1 --zone a &\n```", nil},
		{"stale flag in prose", "set `--gossip-secret`", []string{"--gossip-secret"}},
		{"stale flag on a command line", "```sh\nbin/wimms bench --spawn 3 --workers 8\n```", []string{"--workers"}},
		{"other programs' flags", "```sh\ngit worktree add --detach /tmp/base\n```", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range m.checkDoc("fake.md", tc.doc) {
				got = append(got, f.what)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("checkDoc(%q) reported %q, want %q", tc.doc, got, tc.want)
			}
		})
	}
}

// TestArchitectureTreeListsEveryPackage: docs/architecture.md's tree is the
// map a newcomer reads first, so every Go package directory must have its
// line there (a package that is gone fails TestDocsNameOnlyWhatExists).
func TestArchitectureTreeListsEveryPackage(t *testing.T) {
	root := moduleRoot(t)
	m := loadModule(t, root)
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := treeDirs(string(b))
	if len(listed) == 0 {
		t.Fatal("docs/architecture.md has no tree (a code block after \"## The tree\")")
	}
	var dirs []string
	for d := range m.pkgDirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if d != "internal/docscheck" && !listed[d] {
			t.Errorf("docs/architecture.md's tree has no line for package directory %s/", d)
		}
	}
	if !listed["internal/docscheck"] {
		t.Errorf("docs/architecture.md's tree has no line for internal/docscheck/")
	}
}

// treeDirs returns the directories that start a line of the first code
// block after the "## The tree" heading.
func treeDirs(doc string) map[string]bool {
	_, after, ok := strings.Cut(doc, "## The tree")
	if !ok {
		return nil
	}
	block := fence.FindString(after)
	out := map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		first, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasSuffix(first, "/") {
			out[strings.TrimSuffix(first, "/")] = true
		}
	}
	return out
}

func TestTreeDirs(t *testing.T) {
	doc := "# x\n```\nfsm/ a\n```\n## The tree\ntext\n```\nstore/     the store\nhttpapi/wire/  objects\n.ci/run  ci\n```\n```\njepsen/ later block\n```\n"
	got := treeDirs(doc)
	if len(got) != 2 || !got["store"] || !got["httpapi/wire"] {
		t.Errorf("treeDirs = %v, want store and httpapi/wire only", got)
	}
}

// TestArchitectureDependenciesAreTheModules: the "## Dependencies" block
// of docs/architecture.md says, per package, which of the module's
// packages it imports. It must be what the code imports, so that "points
// one way" is checked rather than claimed.
func TestArchitectureDependenciesAreTheModules(t *testing.T) {
	root := moduleRoot(t)
	m := loadModule(t, root)
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented, err := dependencyBlock(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for dir, imports := range m.imports {
		want := sortedKeys(imports)
		got, ok := documented[dir]
		if !ok {
			t.Errorf("docs/architecture.md's dependencies have no line for %s (it imports %s)", dir, orNothing(want))
			continue
		}
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Errorf("docs/architecture.md says %s imports %s; it imports %s", dir, orNothing(got), orNothing(want))
		}
	}
	for dir := range documented {
		if m.imports[dir] == nil {
			t.Errorf("docs/architecture.md's dependencies list %s, which is no package", dir)
		}
	}
}

const nothing = "nothing of the module"

// dependencyBlock reads the first code block after "## Dependencies":
// lines "dir → a, b" or "dir → nothing of the module".
func dependencyBlock(doc string) (map[string][]string, error) {
	_, after, ok := strings.Cut(doc, "## Dependencies")
	if !ok {
		return nil, errors.New(`docs/architecture.md has no "## Dependencies" section`)
	}
	block := strings.Trim(fence.FindString(after), "`")
	out := map[string][]string{}
	for _, line := range strings.Split(block, "\n") {
		dir, imports, ok := strings.Cut(line, "→")
		if !ok {
			continue
		}
		dir = strings.TrimSpace(dir)
		var list []string
		if imports = strings.TrimSpace(imports); imports != nothing {
			for _, p := range strings.Split(imports, ",") {
				list = append(list, strings.TrimSpace(p))
			}
		}
		sort.Strings(list)
		out[dir] = list
	}
	if len(out) == 0 {
		return nil, errors.New(`docs/architecture.md's "## Dependencies" has no "dir → imports" lines`)
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func orNothing(list []string) string {
	if len(list) == 0 {
		return nothing
	}
	return strings.Join(list, ", ")
}

func TestDependencyBlock(t *testing.T) {
	doc := "## Dependencies\n```\nfsm          → nothing of the module\nstore        → internal/netguard, fsm\n```\n"
	got, err := dependencyBlock(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["fsm"]) != 0 || strings.Join(got["store"], ",") != "fsm,internal/netguard" {
		t.Errorf("dependencyBlock = %v", got)
	}
	if _, err := dependencyBlock("no such section"); err == nil {
		t.Error("a doc without the section was accepted")
	}
}

// TestReadmeLayoutListsEveryPackage: the README's layout table is the
// first map a visitor sees; every package directory is named there in
// backquotes.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	root := moduleRoot(t)
	m := loadModule(t, root)
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(b), "## Layout")
	if !ok {
		t.Fatal(`README.md has no "## Layout" section`)
	}
	if next := strings.Index(layout, "\n## "); next >= 0 {
		layout = layout[:next]
	}
	for _, d := range sortedKeys(m.pkgDirs) {
		if !strings.Contains(layout, "`"+d+"`") && !strings.Contains(layout, "`"+d+"/`") {
			t.Errorf("README.md's layout table does not name package directory `%s`", d)
		}
	}
}
