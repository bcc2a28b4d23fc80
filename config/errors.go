package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config file, located by line and column so an
// editor or a terminal can jump to it.
type Error struct {
	File string
	// Line and Col are 1-based; 0 means unknown (for example a file that
	// cannot be read, or a YAML syntax error the parser did not locate).
	Line, Col int
	Msg       string
	// Warning marks a note that does not stop the config from loading,
	// such as a key the chosen strategy ignores.
	Warning bool

	// err is the cause, when there is one, so errors.Is(err, fs.ErrNotExist)
	// works on what Load returns.
	err error
	// path is the setting the error is about ("servers[0].url"), so that
	// validation can stay quiet about a value that failed to decode.
	path string
}

// Error formats e as FILE:LINE:COL: message, leaving out unknown parts;
// a warning reads FILE:LINE:COL: warning: message, as compilers write them.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		if e.Col > 0 {
			b.WriteString(strconv.Itoa(e.Col))
			b.WriteByte(':')
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.err }

// ErrorList is every problem found in a config file, sorted by position.
// Parse and Load return one so an operator can fix them all in one pass.
type ErrorList []*Error

// Error returns one error per line, in file order.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sorted returns l ordered by file, line and column, with exact duplicates
// removed: an anchored mapping reused through aliases would otherwise
// report the same mistake once per use.
func (l ErrorList) sorted() ErrorList {
	out := slices.Clone(l)
	slices.SortStableFunc(out, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	return slices.CompactFunc(out, func(a, b *Error) bool {
		return a.File == b.File && a.Line == b.Line && a.Col == b.Col && a.Msg == b.Msg
	})
}

// err returns l as an error, or nil when it is empty, avoiding the
// non-nil interface holding a nil slice.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l.sorted()
}

// Pos is a 1-based line and column in a config file.
type Pos struct{ Line, Col int }

// positions remembers where each setting was written, keyed by its path
// ("upstreams.api.servers[1].url"), so that validation, which runs on the
// decoded structs, can still point at the file.
type positions struct {
	// at holds the position of every value seen, including nulls.
	at map[string]Pos
	// set holds the paths that were given a non-null value; defaults apply
	// only to the others, so an explicit 0 stays 0 and can be validated.
	set map[string]bool
	// src names where a value came from when it was not the file, such as
	// "-listen :9000" for a command-line override.
	src map[string]string
}

func newPositions() *positions {
	return &positions{at: map[string]Pos{"": {1, 1}}, set: map[string]bool{}, src: map[string]string{}}
}

// source returns what set path from outside the file, or "".
func (p *positions) source(path string) string {
	if p == nil {
		return ""
	}
	return p.src[path]
}

// lookup returns the position of path or, when it was not written (a
// required key left out), of the nearest enclosing value that was.
func (p *positions) lookup(path string) Pos {
	if p == nil {
		return Pos{}
	}
	for {
		if pos, ok := p.at[path]; ok {
			return pos
		}
		if path == "" {
			return Pos{}
		}
		path = parentPath(path)
	}
}

// isSet reports whether path was given a value in the file.
func (p *positions) isSet(path string) bool {
	return p != nil && p.set[path]
}

// parentPath strips the last element from a path: "a.b[2]" gives "a.b",
// "a.b" gives "a" and "a" gives "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// joinPath appends a key to a path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
