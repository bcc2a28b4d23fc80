package config

import (
	"reflect"
	"strings"
	"sync"
)

// fieldSet maps the YAML keys of a struct, including those of ",inline"
// embedded structs, to field indexes.
type fieldSet struct {
	byName map[string][]int
	names  []string
	// nested maps a key of a child struct to the key that holds it, so a
	// key written one level too high gets "did you mean parent.key?".
	nested map[string]string
	// children holds the keys of each struct-valued key.
	children map[string]*fieldSet
}

var fieldCache sync.Map // reflect.Type → *fieldSet

func fieldsOf(t reflect.Type) *fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*fieldSet)
	}
	fs := &fieldSet{byName: map[string][]int{}, nested: map[string]string{}, children: map[string]*fieldSet{}}
	collectFields(t, nil, fs)
	for _, name := range fs.names {
		ft := t.FieldByIndex(fs.byName[name]).Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct || ft.Implements(unmarshalerType) || reflect.PointerTo(ft).Implements(unmarshalerType) {
			continue
		}
		child := &fieldSet{byName: map[string][]int{}}
		collectFields(ft, nil, child)
		fs.children[name] = child
		for _, c := range child.names {
			if _, taken := fs.nested[c]; !taken {
				fs.nested[c] = name + "." + c
			}
		}
	}
	actual, _ := fieldCache.LoadOrStore(t, fs)
	return actual.(*fieldSet)
}

func collectFields(t reflect.Type, index []int, fs *fieldSet) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, idx, fs)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.byName[name] = idx
		fs.names = append(fs.names, name)
	}
}

// hint returns the "did you mean" text for an unknown key; prev is the key
// written just before it in the same mapping, or "".
//
// A key that is valid one level down is most likely indented too little,
// so that hint comes before a spelling one: "path" dedented out of
// health_checks means health_checks.path, not "watch". The section just
// above is the likeliest home, then any other.
func (fs *fieldSet) hint(key, prev string) string {
	home := ""
	if c := fs.children[prev]; c != nil && c.byName[key] != nil {
		home = prev
	} else if full, ok := fs.nested[key]; ok {
		home, _, _ = strings.Cut(full, ".")
	}
	if home != "" {
		return ", did you mean " + quote(home+"."+key) + " (it belongs inside " + quote(home) + ")?"
	}
	return didYouMean(suggest(key, fs.names))
}
