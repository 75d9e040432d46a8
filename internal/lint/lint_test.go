package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels up from this package.
const repoRoot = "../.."

type goFile struct {
	rel  string // slash-separated path relative to the repo root
	test bool
	file *ast.File
	fset *token.FileSet
}

func parseRepo(t *testing.T) []goFile {
	t.Helper()
	var files []goFile
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != repoRoot && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		files = append(files, goFile{rel: filepath.ToSlash(rel), test: strings.HasSuffix(path, "_test.go"), file: f, fset: fset})
		return nil
	})
	if err != nil {
		t.Fatalf("walk repo: %v", err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d Go files under %s; the walk is broken", len(files), repoRoot)
	}
	return files
}

func dirOf(rel string) string {
	d := filepath.ToSlash(filepath.Dir(rel))
	if d == "." {
		return ""
	}
	return d
}

func underAny(dir string, roots ...string) bool {
	for _, r := range roots {
		if dir == r || strings.HasPrefix(dir, r+"/") {
			return true
		}
	}
	return false
}

// TestForbiddenImports keeps dependencies inside their adapters: the root
// package imports no backend, jetstream stays in natskv and the NATS object
// store (plus the test server helper and the command that wires everything),
// Pebble stays in pebblestore, the AWS SDK in the S3 object store.
func TestForbiddenImports(t *testing.T) {
	const mod = "github.com/slipstream-kv/slipstream/"
	rules := []struct {
		prefix  string
		allowed []string // directories (and their subdirectories) that may import it
		tests   bool     // whether _test.go files anywhere may import it
	}{
		{"github.com/nats-io/nats.go", []string{"natskv", "objstore/natsobj", "internal/natstest", "cmd/slipstream", "internal/embedded", "internal/journaltest"}, true},
		{"github.com/nats-io/nats-server", []string{"internal/natstest", "cmd/slipstream", "internal/embedded"}, true},
		{"github.com/cockroachdb/pebble", []string{"pebblestore"}, false},
		{"github.com/aws/aws-sdk-go-v2", []string{"objstore/s3"}, false},
		{"github.com/prometheus/", []string{"cmd/slipstream"}, false},
		// natscontext (--context) is the command's: the library takes options.
		{"github.com/nats-io/jsm.go", []string{"cmd/slipstream"}, false},
	}
	backends := []string{"natskv", "memkv", "applog", "pebblestore", "storetest", "cmd", "internal/natstest"}
	for _, f := range parseRepo(t) {
		dir := dirOf(f.rel)
		for _, imp := range f.file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, r := range rules {
				if strings.HasPrefix(path, r.prefix) && !underAny(dir, r.allowed...) && !(r.tests && f.test) {
					t.Errorf("%s imports %s; only %v may", f.rel, path, r.allowed)
				}
			}
			if dir == "" && !f.test {
				for _, b := range backends {
					if path == mod+b || strings.HasPrefix(path, mod+b+"/") {
						t.Errorf("%s: the root package must not import the backend %s", f.rel, path)
					}
				}
			}
		}
	}
}

// TestFmtErrorf requires %w when fmt.Errorf is given an error named err:
// %v or %s would cut the chain that errors.Is walks.
func TestFmtErrorf(t *testing.T) {
	for _, v := range errorfViolations(parseRepo(t)) {
		t.Error(v)
	}
}

func errorfViolations(files []goFile) []string {
	var out []string
	for _, f := range files {
		ast.Inspect(f.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isSelector(call.Fun, "fmt", "Errorf") || len(call.Args) < 2 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			hasErrArg := false
			for _, a := range call.Args[1:] {
				if id, ok := a.(*ast.Ident); ok && (id.Name == "err" || strings.HasSuffix(id.Name, "Err")) {
					hasErrArg = true
				}
			}
			if hasErrArg && !strings.Contains(lit.Value, "%w") {
				out = append(out, fmt.Sprintf("%s: fmt.Errorf(%s, …) passes an error without %%w", f.fset.Position(call.Pos()), lit.Value))
			}
			return true
		})
	}
	return out
}

// TestRawAtomics forbids the sync/atomic functions in favour of the typed
// atomics (atomic.Uint64 and friends).
func TestRawAtomics(t *testing.T) {
	for _, v := range atomicViolations(parseRepo(t)) {
		t.Error(v)
	}
}

func atomicViolations(files []goFile) []string {
	var out []string
	for _, f := range files {
		ast.Inspect(f.file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "atomic" {
				for _, p := range []string{"Add", "Load", "Store", "Swap", "CompareAndSwap", "And", "Or"} {
					if strings.HasPrefix(sel.Sel.Name, p) {
						out = append(out, fmt.Sprintf("%s: use a typed atomic instead of atomic.%s", f.fset.Position(sel.Pos()), sel.Sel.Name))
					}
				}
			}
			return true
		})
	}
	return out
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == pkg && sel.Sel.Name == name
}

// TestLintCatchesViolations proves the checks above can fail.
func TestLintCatchesViolations(t *testing.T) {
	src := `package bad
import "fmt"
import "sync/atomic"
var n uint64
func f(err error) error { atomic.AddUint64(&n, 1); return fmt.Errorf("open: %v", err) }
func g(err error) error { return fmt.Errorf("open: %w", err) }`
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "bad.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	files := []goFile{{rel: "bad.go", file: file, fset: fset}}
	if v := errorfViolations(files); len(v) != 1 {
		t.Errorf("errorfViolations = %q; want exactly the %%v call", v)
	}
	if v := atomicViolations(files); len(v) != 1 {
		t.Errorf("atomicViolations = %q; want exactly atomic.AddUint64", v)
	}
}
