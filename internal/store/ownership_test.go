package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tableOwners says which package owns each table: the one package that
// declares its model and writes it. Every other package asks the owner.
var tableOwners = map[string]string{
	"organizations":             "internal/orgs",
	"api_keys":                  "internal/auth",
	"subscriptions":             "internal/billing",
	"plan_periods":              "internal/billing",
	"checkout_sessions":         "internal/billing",
	"invoices":                  "internal/invoices",
	"webhook_events":            "internal/stripehook",
	"usage_events":              "internal/usage",
	"usage_event_keys":          "internal/usage",
	"usage_rollups":             "internal/usage",
	"usage_endpoint_rollups":    "internal/usage",
	"usage_endpoint_names":      "internal/usage",
	"usage_daily_rollups":       "internal/usage",
	"usage_alert_settings":      "internal/usage",
	"usage_alerts":              "internal/usage",
	"overage_charges":           "internal/overage",
	"overage_unbilled":          "internal/overage",
	"overage_final_bills":       "internal/overage",
	"webhook_endpoints":         "internal/outbound",
	"outbound_events":           "internal/outbound",
	"outbound_sequences":        "internal/outbound",
	"webhook_deliveries":        "internal/outbound",
	"webhook_delivery_attempts": "internal/outbound",
}

const module = "github.com/tollgate-billing/tollgate"

// Every table the migrations create has exactly one owner in tableOwners,
// so a new table cannot slip past the checks below. A partition (CREATE
// TABLE … PARTITION OF) is its parent's, and a table a migration builds
// under a passing name and then renames is the table it is renamed to.
func TestEveryTableHasAnOwner(t *testing.T) {
	root := moduleRoot(t)
	create := regexp.MustCompile(`(?i)CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)( PARTITION OF)?`)
	rename := regexp.MustCompile(`(?i)ALTER TABLE ([a-z_]+) RENAME TO ([a-z_]+)`)
	seen := map[string]bool{}
	for _, dialect := range []string{"postgres", "sqlite"} {
		files, err := filepath.Glob(filepath.Join(root, "migrations", dialect, "*.sql"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no %s migrations: %v", dialect, err)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			renames := rename.FindAllStringSubmatchIndex(string(raw), -1)
			for _, m := range create.FindAllStringSubmatchIndex(string(raw), -1) {
				if m[4] >= 0 { // a partition
					continue
				}
				table := string(raw[m[2]:m[3]])
				for _, r := range renames { // the first rename after the CREATE
					if r[0] > m[0] && string(raw[r[2]:r[3]]) == table {
						table = string(raw[r[4]:r[5]])
						break
					}
				}
				seen[table] = true
				if _, ok := tableOwners[table]; !ok {
					t.Errorf("%s creates table %s, which has no owner in tableOwners", filepath.Base(f), table)
				}
			}
		}
	}
	for table := range tableOwners {
		if !seen[table] {
			t.Errorf("tableOwners names %s, which no migration creates", table)
		}
	}
}

// store is infrastructure: it declares no table model. Each model lives in
// the package that owns its table, and only that package writes the table,
// in SQL or through GORM. Tests may seed any table and are not checked.
func TestEachTableIsDeclaredAndWrittenOnlyByItsOwner(t *testing.T) {
	pkgs := parseModule(t)

	// Models: a TableName method returning a literal names its table.
	models := map[string]string{} // "import/path.Type" -> table
	for _, p := range pkgs {
		for _, f := range p.files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Name.Name != "TableName" || fn.Recv == nil || len(fn.Recv.List) != 1 {
					continue
				}
				recv := typeName(fn.Recv.List[0].Type)
				table, ok := returnedString(fn)
				if !ok {
					t.Errorf("%s: %s.TableName does not return a string literal", p.fset.Position(fn.Pos()), recv)
					continue
				}
				models[module+"/"+p.dir+"."+recv] = table
				if p.dir == "internal/store" {
					t.Errorf("%s: store declares the model %s of table %s; it belongs to %s",
						p.fset.Position(fn.Pos()), recv, table, tableOwners[table])
				} else if owner, known := tableOwners[table]; !known {
					t.Errorf("%s: model %s names table %s, which has no owner", p.fset.Position(fn.Pos()), recv, table)
				} else if owner != p.dir {
					t.Errorf("%s: %s declares the model of %s, owned by %s", p.fset.Position(fn.Pos()), p.dir, table, owner)
				}
			}
		}
	}

	sqlWrite := regexp.MustCompile(`\b(?:INSERT INTO|UPDATE|DELETE FROM)\s+([a-z_]+)\b`)
	for _, p := range pkgs {
		for _, f := range p.files {
			imports := importsOf(f)
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BinaryExpr, *ast.BasicLit:
					s, ok := constString(n.(ast.Expr))
					if !ok {
						return true
					}
					for _, m := range sqlWrite.FindAllStringSubmatch(s, -1) {
						if owner, known := tableOwners[m[1]]; known && owner != p.dir {
							t.Errorf("%s: %s writes %s in SQL; only %s may", p.fset.Position(n.Pos()), p.dir, m[1], owner)
						}
					}
					return false
				case *ast.FuncDecl:
					if n.Body == nil {
						return false
					}
					vars := localTypes(n, imports, p.dir)
					ast.Inspect(n.Body, func(c ast.Node) bool {
						call, ok := c.(*ast.CallExpr)
						if !ok {
							return true
						}
						sel, ok := call.Fun.(*ast.SelectorExpr)
						if !ok || !gormWrites[sel.Sel.Name] {
							return true
						}
						for _, table := range writtenTables(call, models, vars, imports, p.dir) {
							if owner := tableOwners[table]; owner != p.dir {
								t.Errorf("%s: %s writes %s through GORM (%s); only %s may",
									p.fset.Position(call.Pos()), p.dir, table, sel.Sel.Name, owner)
							}
						}
						return true
					})
				}
				return true
			})
		}
	}
	if len(models) == 0 {
		t.Fatal("found no models: is the module root right?")
	}
}

// gormWrites are the GORM methods that change rows.
var gormWrites = map[string]bool{
	"Create": true, "CreateInBatches": true, "Save": true, "FirstOrCreate": true,
	"Update": true, "Updates": true, "UpdateColumn": true, "UpdateColumns": true, "Delete": true,
}

// writtenTables is what one GORM write call changes: the table named by
// Model(…) or Table(…) earlier in its chain, else the one of its argument.
func writtenTables(call *ast.CallExpr, models map[string]string, vars map[string]string, imports map[string]string, dir string) []string {
	var out []string
	tableOf := func(e ast.Expr) {
		if typ := exprType(e, vars, imports, dir); typ != "" {
			if table, ok := models[typ]; ok {
				out = append(out, table)
			}
		}
	}
	chained := false
	for e := call.Fun.(*ast.SelectorExpr).X; ; {
		c, ok := e.(*ast.CallExpr)
		if !ok {
			break
		}
		sel, ok := c.Fun.(*ast.SelectorExpr)
		if !ok {
			break
		}
		switch {
		case sel.Sel.Name == "Model" && len(c.Args) == 1:
			tableOf(c.Args[0])
			chained = true
		case sel.Sel.Name == "Table" && len(c.Args) >= 1:
			if s, ok := constString(c.Args[0]); ok {
				out = append(out, strings.Fields(s)[0])
				chained = true
			}
		}
		e = sel.X
	}
	if !chained && len(call.Args) > 0 {
		tableOf(call.Args[0])
	}
	return out
}

// exprType is the qualified type ("import/path.Type") of a model value:
// a composite literal, its address, or a variable declared in the function.
func exprType(e ast.Expr, vars, imports map[string]string, dir string) string {
	switch x := e.(type) {
	case *ast.UnaryExpr:
		return exprType(x.X, vars, imports, dir)
	case *ast.StarExpr:
		return exprType(x.X, vars, imports, dir)
	case *ast.ParenExpr:
		return exprType(x.X, vars, imports, dir)
	case *ast.CompositeLit:
		return qualified(x.Type, imports, dir)
	case *ast.Ident:
		return vars[x.Name]
	}
	return ""
}

// qualified names a type expression by its import path.
func qualified(e ast.Expr, imports map[string]string, dir string) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return qualified(x.X, imports, dir)
	case *ast.ArrayType:
		return qualified(x.Elt, imports, dir)
	case *ast.Ident:
		return module + "/" + dir + "." + x.Name
	case *ast.SelectorExpr:
		if pkg, ok := x.X.(*ast.Ident); ok {
			if path, ok := imports[pkg.Name]; ok {
				return path + "." + x.Sel.Name
			}
		}
	}
	return ""
}

// localTypes maps the names of a function's receiver, parameters and local
// variables to their types, where the declaration says.
func localTypes(fn *ast.FuncDecl, imports map[string]string, dir string) map[string]string {
	vars := map[string]string{}
	fields := func(l *ast.FieldList) {
		if l == nil {
			return
		}
		for _, f := range l.List {
			for _, n := range f.Names {
				vars[n.Name] = qualified(f.Type, imports, dir)
			}
		}
	}
	fields(fn.Recv)
	fields(fn.Type.Params)
	fields(fn.Type.Results)
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.ValueSpec:
			for i, name := range x.Names {
				switch {
				case x.Type != nil:
					vars[name.Name] = qualified(x.Type, imports, dir)
				case i < len(x.Values):
					vars[name.Name] = exprType(x.Values[i], vars, imports, dir)
				}
			}
		case *ast.AssignStmt:
			if x.Tok == token.DEFINE && len(x.Lhs) == len(x.Rhs) {
				for i, l := range x.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						vars[id.Name] = exprType(x.Rhs[i], vars, imports, dir)
					}
				}
			}
		}
		return true
	})
	return vars
}

// constString joins a string literal or a sum of string literals.
func constString(e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(x.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		a, ok1 := constString(x.X)
		b, ok2 := constString(x.Y)
		if ok1 || ok2 {
			// A variable part (a table name passed in) reads as a space.
			return a + " " + b, true
		}
	case *ast.ParenExpr:
		return constString(x.X)
	}
	return "", false
}

func returnedString(fn *ast.FuncDecl) (string, bool) {
	if fn.Body == nil || len(fn.Body.List) != 1 {
		return "", false
	}
	ret, ok := fn.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return "", false
	}
	return constString(ret.Results[0])
}

func typeName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return typeName(x.X)
	case *ast.Ident:
		return x.Name
	}
	return ""
}

// importsOf maps a file's import names to their paths.
func importsOf(f *ast.File) map[string]string {
	out := map[string]string{}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		out[name] = path
	}
	return out
}

type parsedPkg struct {
	dir   string // relative to the module root, "." for the root
	fset  *token.FileSet
	files []*ast.File
}

// parseModule parses every non-test Go file of the module, by directory.
func parseModule(t *testing.T) []parsedPkg {
	t.Helper()
	root := moduleRoot(t)
	fset := token.NewFileSet()
	byDir := map[string]*parsedPkg{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if byDir[rel] == nil {
			byDir[rel] = &parsedPkg{dir: rel, fset: fset}
		}
		byDir[rel].files = append(byDir[rel].files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []parsedPkg
	for _, p := range byDir {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b parsedPkg) int { return strings.Compare(a.dir, b.dir) })
	return out
}

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
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
