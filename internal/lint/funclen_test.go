// Package lint holds checks over the module's own source that go vet does
// not make; it has no code of its own, only tests.
package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	pathpkg "path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxFuncLines bounds a function from its `func` line to its closing brace.
// Past it a function does several things a reader has to hold at once; the
// parts get names instead.
const maxFuncLines = 80

// longFuncAllowed names the functions over maxFuncLines that are accepted
// for now, each with the reason. Keys are "<dir>.<Func>" or
// "<dir>.<Recv>.<Method>" with dir relative to the module root. An entry
// whose function is gone or short again fails the test, so the list cannot
// outlive its reasons.
var longFuncAllowed = map[string]string{}

// longFunc is one function over the limit.
type longFunc struct {
	name  string // "<Func>" or "<Recv>.<Method>"
	pos   string // file:line of the func keyword
	lines int
}

// longFuncs lists the functions of one parsed file that span more than
// maxFuncLines, leaving out tables: a body that is only `return` of a
// composite literal holding no code.
func longFuncs(fset *token.FileSet, f *ast.File) []longFunc {
	var out []longFunc
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
		n := end.Line - start.Line + 1
		if n <= maxFuncLines || isTable(fd.Body) {
			continue
		}
		out = append(out, longFunc{name: funcName(fd), pos: fmt.Sprintf("%s:%d", start.Filename, start.Line), lines: n})
	}
	return out
}

// isTable reports whether a body only returns one composite literal (a
// route or flag table, say) with no function literal inside: a literal
// that carries code is code, and is held to the limit like any other.
func isTable(body *ast.BlockStmt) bool {
	if len(body.List) != 1 {
		return false
	}
	ret, ok := body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return false
	}
	e := ret.Results[0]
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	if _, ok := e.(*ast.CompositeLit); !ok {
		return false
	}
	hasCode := false
	ast.Inspect(e, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			hasCode = true
		}
		return !hasCode
	})
	return !hasCode
}

// funcName is the name a reader searches for: Recv.Method for methods
// (type parameters and pointer left out), the plain name otherwise.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// moduleRoot walks up from the test's directory to go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// TestNoLongFunctions parses every non-test .go file of the module, every
// build tag included (the parser ignores constraints), and fails naming
// each function over maxFuncLines that is neither a table nor allowed.
func TestNoLongFunctions(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	found := map[string]longFunc{}
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			// Like the go command: testdata, hidden and _-prefixed
			// directories hold no package of the module.
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		// Parsed under its module-relative name so the failure names a
		// path a reader can open from the repository root.
		f, err := parser.ParseFile(fset, rel, src, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", rel, err)
		}
		files++
		for _, lf := range longFuncs(fset, f) {
			found[pathpkg.Dir(rel)+"."+lf.name] = lf
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no .go files found under %s", root)
	}
	var bad []string
	for key, lf := range found {
		if _, ok := longFuncAllowed[key]; !ok {
			bad = append(bad, fmt.Sprintf("%s: %s is %d lines (limit %d): split it into named helpers", lf.pos, key, lf.lines, maxFuncLines))
		}
	}
	for key, reason := range longFuncAllowed {
		if _, ok := found[key]; !ok {
			bad = append(bad, fmt.Sprintf("allow-list entry %s (%s) names no function over %d lines: remove it", key, reason, maxFuncLines))
		}
	}
	slices.Sort(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// funcSrc is a function spanning exactly n lines whose body is plain
// statements.
func funcSrc(name string, n int) string {
	return "func " + name + "() {\n" + strings.Repeat("\tx++\n", n-2) + "}\n"
}

// tableSrc is a function spanning exactly n lines that returns one
// composite literal; withFunc puts a function literal in it.
func tableSrc(name string, n int, withFunc bool) string {
	var b strings.Builder
	b.WriteString("func " + name + "() *T {\n\treturn &T{\n")
	rows := n - 4
	if withFunc {
		b.WriteString("\t\tRun: func() {},\n")
		rows--
	}
	b.WriteString(strings.Repeat("\t\t{1, 2},\n", rows))
	b.WriteString("\t}\n}\n")
	return b.String()
}

func TestLongFuncs(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string // "name lines"
	}{
		{"short", funcSrc("f", 10), nil},
		{"at the limit", funcSrc("f", 80), nil},
		{"one over", funcSrc("f", 81), []string{"f 81"}},
		{"long method", "func (s *Server) run() {\n" + strings.Repeat("\tx++\n", 100) + "}\n", []string{"Server.run 102"}},
		{"generic receiver", "func (l List[T]) walk() {\n" + strings.Repeat("\tx++\n", 90) + "}\n", []string{"List.walk 92"}},
		{"table", tableSrc("routes", 120, false), nil},
		{"table holding code", tableSrc("newCmd", 120, true), []string{"newCmd 120"}},
		{"literal then more", "func g() *T {\n\tt := &T{\n" + strings.Repeat("\t\t{1},\n", 90) + "\t}\n\treturn t\n}\n", []string{"g 95"}},
		{"two long, one short", funcSrc("a", 85) + funcSrc("b", 3) + funcSrc("c", 200), []string{"a 85", "c 200"}},
		{"declaration without body", "func asm(x int) int\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "x.go", "package x\n\n"+tc.src, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, lf := range longFuncs(fset, f) {
				got = append(got, fmt.Sprintf("%s %d", lf.name, lf.lines))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("long functions = %q, want %q", got, tc.want)
			}
		})
	}
}
