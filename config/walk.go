package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxSteps bounds the work one file may cause. Aliases and merge keys can
// make a small file expand exponentially ("billion laughs"); a real config
// needs a few thousand steps.
const maxSteps = 200_000

// walker decodes a yaml.Node tree into the config structs by hand rather
// than with yaml.Node.Decode, so that it can keep going after an error,
// report every unknown key with a suggestion, expand ${VAR} per scalar and
// remember where each value was written.
type walker struct {
	file   string
	lookup func(string) (string, bool)
	pos    *positions
	errs   ErrorList
	steps  int
	// active holds the anchors being expanded, to catch an alias that
	// refers to itself (yaml.v3 builds such cycles for "&a [*a]").
	active map[*yaml.Node]bool
	// options holds the load_balancing.options blocks met on the way.
	options map[*StrategyOptions]*yaml.Node
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (w *walker) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	w.errs = append(w.errs, &Error{File: w.file, Line: n.Line, Col: n.Column, Msg: msg, path: path})
}

// budget counts a step and reports whether the walk may go on.
func (w *walker) budget(n *yaml.Node) bool {
	w.steps++
	if w.steps == maxSteps {
		w.errorf(n, "", "file too complex: aliases and merge keys expand to too many values")
	}
	return w.steps < maxSteps
}

// decode stores node n into v, whose path in the config is path.
func (w *walker) decode(n *yaml.Node, v reflect.Value, path string) {
	if !w.budget(n) {
		return
	}
	if n.Kind == yaml.AliasNode {
		target := n.Alias
		if target == nil || w.active[target] {
			w.errorf(n, path, "alias *%s refers to itself", n.Value)
			return
		}
		w.active[target] = true
		w.decode(target, v, path)
		delete(w.active, target)
		// Point at the use of the alias, not the anchor, for errors about
		// the value as a whole.
		w.pos.at[path] = Pos{n.Line, n.Column}
		return
	}
	w.pos.at[path] = Pos{n.Line, n.Column}
	if isNull(n) {
		// An empty section such as "passive:" turns the feature on with its
		// defaults; any other null value means "not set".
		if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct && v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			w.pos.set[path] = true
		}
		return
	}
	w.pos.set[path] = true

	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		w.custom(n, v, path)
		return
	}
	if v.Type() == policyType {
		w.policy(n, v, path)
		return
	}
	if v.Type() == strategyOptionsType {
		// Decoded once the whole file is read: the strategy may be named
		// after its options.
		if w.options == nil {
			w.options = map[*StrategyOptions]*yaml.Node{}
		}
		w.options[v.Addr().Interface().(*StrategyOptions)] = n
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		w.decode(n, v.Elem(), path)
	case reflect.Struct:
		w.structure(n, v, path)
	case reflect.Slice:
		w.list(n, v, path)
	case reflect.Map:
		w.dict(n, v, path)
	default:
		w.scalar(n, v, path)
	}
}

// custom hands a scalar, after ${VAR} expansion, to a type's own
// UnmarshalYAML (Duration, Size), prefixing its message with the path.
func (w *walker) custom(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode {
		s, ok := w.expand(n, path)
		if !ok {
			return
		}
		expanded := *n
		expanded.Value = s
		n = &expanded
	}
	if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
		w.errorf(n, path, "%s", err.Error())
	}
}

// expand applies ${VAR} expansion to a scalar, reporting a failure at the
// scalar's own position.
func (w *walker) expand(n *yaml.Node, path string) (string, bool) {
	s, err := expand(n.Value, w.lookup)
	if err != nil {
		w.errorf(n, path, "%s", err.Error())
		return "", false
	}
	return s, true
}

// scalarKinds names, for messages, the scalar kinds the config uses.
var scalarKinds = map[reflect.Kind]string{
	reflect.String: "a string", reflect.Bool: "true or false",
	reflect.Int: "an integer", reflect.Float64: "a number",
}

func (w *walker) scalar(n *yaml.Node, v reflect.Value, path string) {
	want := scalarKinds[v.Kind()]
	if want == "" {
		// Only reachable if types.go gains a field of a kind not handled
		// here; the tests decode every field, so say so plainly.
		w.errorf(n, path, "internal error: cannot decode into this setting")
		return
	}
	if n.Kind != yaml.ScalarNode {
		w.errorf(n, path, "must be %s, not %s", want, describe(n))
		return
	}
	s, ok := w.expand(n, path)
	if !ok {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		// Only true and false: YAML 1.1's yes/no/on/off are too easy to
		// write by accident (the "Norway problem").
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			w.errorf(n, path, "must be true or false, not %s", quote(s))
		}
	case reflect.Int:
		// Base 10 even with a leading 0: YAML 1.2 reads "010" as ten, and
		// so should we, unlike Go's base-0 parsing.
		digits := strings.ReplaceAll(strings.TrimSpace(s), "_", "")
		i, err := strconv.ParseInt(digits, 10, strconv.IntSize)
		if err != nil {
			w.errorf(n, path, "must be an integer, not %s", quote(s))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			w.errorf(n, path, "must be a number, not %s", quote(s))
			return
		}
		v.SetFloat(f)
	}
}

func (w *walker) list(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		w.errorf(n, path, "must be a list, not %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		w.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// dict decodes a mapping with user-chosen keys (upstreams).
func (w *walker) dict(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		w.errorf(n, path, "must be a mapping of names to settings, not %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, p := range w.pairs(n, path) {
		elem := reflect.New(v.Type().Elem()).Elem()
		w.decode(p.val, elem, joinPath(path, p.key.Value))
		v.SetMapIndex(reflect.ValueOf(p.key.Value), elem)
	}
}

// structure decodes a mapping into a struct, field by yaml tag, reporting
// each unknown key with the closest known one.
func (w *walker) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		what := "settings"
		if path == "" {
			what = "settings such as servers and listen"
		}
		w.errorf(n, path, "must be a mapping of %s, not %s", what, describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	prev := ""
	for _, p := range w.pairs(n, path) {
		f, ok := fields.byName[p.key.Value]
		if !ok {
			w.errorf(p.key, joinPath(path, p.key.Value), "unknown key%s", fields.hint(p.key.Value, prev))
			continue
		}
		prev = p.key.Value
		w.decode(p.val, v.FieldByIndex(f), joinPath(path, p.key.Value))
	}
}

type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries with YAML merge keys ("<<: *base")
// applied: keys written in the mapping win over merged ones, and earlier
// merge sources win over later ones. Duplicate keys are reported, since
// YAML forbids them and only one of the two values could be used.
func (w *walker) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := w.deref(n.Content[i]), n.Content[i+1]
		if k == nil || !w.budget(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.errorf(k, path, "keys must be plain names, not %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merged = append(merged, w.mergeSources(val, path)...)
			continue
		}
		own = append(own, pair{k, val})
	}
	out := make([]pair, 0, len(own)+len(merged))
	seen := make(map[string]*yaml.Node, len(own))
	for _, p := range own {
		if first, dup := seen[p.key.Value]; dup {
			w.errorf(p.key, joinPath(path, p.key.Value), "duplicate key (first set on line %d)", first.Line)
			continue
		}
		seen[p.key.Value] = p.key
		out = append(out, p)
	}
	for _, p := range merged {
		if _, dup := seen[p.key.Value]; !dup {
			seen[p.key.Value] = p.key
			out = append(out, p)
		}
	}
	return out
}

// mergeSources returns the entries a merge key brings in: a mapping, or a
// list of mappings.
func (w *walker) mergeSources(val *yaml.Node, path string) []pair {
	src := w.deref(val)
	if src == nil {
		return nil
	}
	if src.Kind == yaml.MappingNode {
		return w.withActive(src, func() []pair { return w.pairs(src, path) })
	}
	if src.Kind != yaml.SequenceNode {
		w.errorf(val, path, "<< must merge a mapping or a list of mappings, not %s", describe(src))
		return nil
	}
	var out []pair
	for _, item := range src.Content {
		m := w.deref(item)
		if m == nil {
			continue
		}
		if m.Kind != yaml.MappingNode {
			w.errorf(item, path, "<< must merge mappings, not %s", describe(m))
			continue
		}
		out = append(out, w.withActive(m, func() []pair { return w.pairs(m, path) })...)
	}
	return out
}

// withActive runs f with m marked as being expanded, returning nothing if
// m is already being expanded (a merge that includes itself).
func (w *walker) withActive(m *yaml.Node, f func() []pair) []pair {
	if w.active[m] {
		w.errorf(m, "", "merge key refers to the mapping that contains it")
		return nil
	}
	w.active[m] = true
	defer delete(w.active, m)
	return f()
}

// deref follows aliases to the node they name, or returns nil (after
// reporting) for an alias that loops.
func (w *walker) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			w.errorf(n, "", "alias *%s refers to itself", n.Value)
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node holds, for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return quote(n.Value)
}
