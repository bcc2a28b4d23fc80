package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

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
