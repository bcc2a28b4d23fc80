package config

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// maxLocateParses bounds the extra parsing syntaxError may do to find the
// line of a mistake.
const maxLocateParses = 400

// syntaxError turns a yaml.v3 parse error ("yaml: line 3: mapping values
// are not allowed in this context") into an Error at the line and column
// of the mistake.
//
// The parser names the line where the enclosing block began (line 1 for a
// key mis-indented on line 3) and no column. The mistake is on the first
// line at which the file, cut after that line, stops parsing; that line
// is at or after the one the parser named, so the search is short.
func syntaxError(file string, data []byte, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	from := max(e.Line, 1)
	for k := from; k <= len(lines) && k < from+maxLocateParses; k++ {
		if !parses(bytes.Join(lines[:k], nil)) {
			e.Line = k
			e.Col, msg = describeSyntax(string(lines[k-1]), msg)
			break
		}
	}
	e.Msg = "invalid YAML: " + msg
	return e
}

// parses reports whether data is a well-formed YAML stream.
func parses(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		switch err := dec.Decode(&n); {
		case errors.Is(err, io.EOF):
			return true
		case err != nil:
			return false
		}
	}
}

// describeSyntax finds the column of the mistake the parser described as
// msg on line, and words the message for someone who does not know YAML's
// grammar.
func describeSyntax(line, msg string) (int, string) {
	line = strings.TrimRight(line, "\r\n")
	indent := len(line) - len(strings.TrimLeft(line, " \t"))
	first := indent + 1 // the first character that is not indentation
	if i := strings.IndexByte(line[:indent], '\t'); i >= 0 {
		return i + 1, "tabs are not allowed for indentation in YAML; use spaces"
	}
	switch {
	case strings.Contains(msg, "did not find expected key"),
		strings.Contains(msg, "did not find expected '-' indicator"):
		return first, msg + " (is this line indented more or less than the lines above?)"
	case strings.Contains(msg, "cannot start any token"):
		if i := strings.IndexAny(line[indent:], "@`\t"); i >= 0 {
			if line[indent+i] == '\t' {
				return indent + i + 1, "a tab cannot start a value in YAML; use spaces"
			}
			return indent + i + 1, msg + " (" + strconv.QuoteRune(rune(line[indent+i])) + " is reserved: put the value in quotes)"
		}
	case strings.Contains(msg, "mapping values are not allowed"):
		// The colon that YAML could not take as a key's is the last one.
		if i := lastColon(line); i >= 0 {
			return i + 1, msg + " (put a value that contains \": \" in quotes, or check the indentation)"
		}
	case strings.Contains(msg, "block sequence entries are not allowed"):
		if i := strings.Index(line, ": - "); i >= 0 {
			return i + 3, msg + " (start the list on the next line)"
		}
	case strings.Contains(msg, "unexpected end of stream"):
		if i := strings.IndexAny(line[indent:], `"'`); i >= 0 {
			return indent + i + 1, msg + " (this quote is never closed)"
		}
	case strings.Contains(msg, "unknown anchor"):
		if i := strings.IndexByte(line, '*'); i >= 0 {
			return i + 1, msg
		}
	case strings.Contains(msg, "']'"), strings.Contains(msg, "'}'"):
		if i := strings.LastIndexAny(line, "[{"); i >= 0 {
			return i + 1, msg + " (this bracket is never closed)"
		}
	}
	return first, msg
}

// lastColon returns the index of the last ": " or line-ending ":" on line,
// or -1.
func lastColon(line string) int {
	if strings.HasSuffix(line, ":") {
		return len(line) - 1
	}
	return strings.LastIndex(line, ": ")
}
