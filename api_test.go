package main

import (
	"bytes"
	"flag"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var updateAPI = flag.Bool("update-api", false, "rewrite testdata/api.txt with the current public API")

// TestPublicAPIIsIntentional keeps the exported surface of the public
// packages (what a custom build may use) in testdata/api.txt, one line a
// declaration: a change to it fails here until the file is updated with
// go test -run TestPublicAPIIsIntentional -update-api . and the diff is
// reviewed with the change.
func TestPublicAPIIsIntentional(t *testing.T) {
	got := publicAPI(t)
	const golden = "testdata/api.txt"
	if *updateAPI {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (make it with -update-api)", err)
	}
	if got == string(want) {
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			t.Errorf("new in the public API: %s", l)
		}
	}
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			t.Errorf("gone from the public API: %s", l)
		}
	}
	t.Log("if the change is meant, update the file: go test -run TestPublicAPIIsIntentional -update-api .")
}

// publicAPI lists the exported declarations of the public packages, one
// line each, sorted: package, then the declaration as gofmt prints it
// without bodies, comments or unexported fields.
func publicAPI(t *testing.T) string {
	t.Helper()
	fset := token.NewFileSet()
	var lines []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "internal" || path == "examples" || d.Name() == "testdata" || (path != "." && strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		dir := filepath.Dir(path)
		if dir == "." || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			for _, l := range exportedLines(fset, decl) {
				lines = append(lines, dir+": "+l)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

func exportedLines(fset *token.FileSet, decl ast.Decl) []string {
	print := func(n any) string {
		var b bytes.Buffer
		printer.Fprint(&b, fset, n)
		return strings.Join(strings.Fields(b.String()), " ")
	}
	var out []string
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() || (d.Recv != nil && !exportedReceiver(d.Recv)) {
			return nil
		}
		fn := *d
		fn.Body, fn.Doc = nil, nil
		out = append(out, print(&fn))
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				if !s.Name.IsExported() {
					continue
				}
				ts := *s
				ts.Doc, ts.Comment = nil, nil
				ts.Type = exportedOnly(s.Type)
				out = append(out, "type "+print(&ts))
			case *ast.ValueSpec:
				for _, name := range s.Names {
					if !name.IsExported() {
						continue
					}
					l := d.Tok.String() + " " + name.Name
					if s.Type != nil {
						l += " " + print(s.Type)
					}
					out = append(out, l)
				}
			}
		}
	}
	return out
}

// exportedOnly returns a struct or interface type without its unexported
// fields and methods, which are not part of the API.
func exportedOnly(typ ast.Expr) ast.Expr {
	var fields *ast.FieldList
	switch t := typ.(type) {
	case *ast.StructType:
		fields = t.Fields
	case *ast.InterfaceType:
		fields = t.Methods
	default:
		return typ
	}
	kept := &ast.FieldList{}
	for _, f := range fields.List {
		var names []*ast.Ident
		for _, n := range f.Names {
			if n.IsExported() {
				names = append(names, n)
			}
		}
		if len(f.Names) > 0 && len(names) == 0 {
			continue
		}
		kept.List = append(kept.List, &ast.Field{Names: names, Type: f.Type, Tag: f.Tag})
	}
	if _, ok := typ.(*ast.StructType); ok {
		return &ast.StructType{Fields: kept}
	}
	return &ast.InterfaceType{Methods: kept}
}

// TestPublicAPIHidesInternalTypes keeps the fast path's plumbing (h1,
// reqinfo, the forwarder, the access-log tracker) an implementation
// detail: no exported function, method, type, field or variable of a
// public package names a type from internal/, which a user of the package
// could neither build nor read about.
func TestPublicAPIHidesInternalTypes(t *testing.T) {
	fset := token.NewFileSet()
	var leaks []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "internal" || (path != "." && strings.HasPrefix(d.Name(), ".")) || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Dir(path) == "." || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, at := range exportedInternalUses(f) {
			leaks = append(leaks, fset.Position(at).String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaks {
		t.Errorf("%s: an exported declaration names a type from internal/", l)
	}
}

// exportedInternalUses returns where f's exported declarations name a
// package imported from under internal/.
func exportedInternalUses(f *ast.File) []token.Pos {
	internal := map[string]bool{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if !strings.Contains(p, "/internal/") {
			continue
		}
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		internal[name] = true
	}
	if len(internal) == 0 {
		return nil
	}
	var at []token.Pos
	find := func(n ast.Node) {
		if n == nil {
			return
		}
		ast.Inspect(n, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] {
					at = append(at, sel.Pos())
				}
			}
			return true
		})
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || (d.Recv != nil && !exportedReceiver(d.Recv)) {
				continue
			}
			find(d.Type)
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() {
						findExportedParts(s.Type, find)
					}
				case *ast.ValueSpec:
					for _, name := range s.Names {
						if name.IsExported() {
							find(s.Type)
							break
						}
					}
				}
			}
		}
	}
	return at
}

// findExportedParts looks at a type's exported fields and methods only:
// unexported fields may hold whatever the package likes.
func findExportedParts(typ ast.Expr, find func(ast.Node)) {
	var fields *ast.FieldList
	switch t := typ.(type) {
	case *ast.StructType:
		fields = t.Fields
	case *ast.InterfaceType:
		fields = t.Methods
	default:
		find(typ)
		return
	}
	for _, fl := range fields.List {
		if len(fl.Names) == 0 {
			find(fl.Type) // embedded: its methods are promoted
			continue
		}
		for _, name := range fl.Names {
			if name.IsExported() {
				find(fl.Type)
				break
			}
		}
	}
}

func exportedReceiver(recv *ast.FieldList) bool {
	typ := recv.List[0].Type
	for {
		switch t := typ.(type) {
		case *ast.StarExpr:
			typ = t.X
		case *ast.IndexExpr:
			typ = t.X
		case *ast.IndexListExpr:
			typ = t.X
		case *ast.Ident:
			return t.IsExported()
		default:
			return true
		}
	}
}
