package config

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes, defaults and validates the config file at path,
// reading the certificate and key it names as the proxy will at start.
// On failure the error is an ErrorList holding every problem found; on
// success Config.Warnings holds what is worth saying but not fatal.
func Load(path string) (*Config, error) { return LoadWith(path) }

// LoadWith is Load with settings from outside the file (command-line
// flags) taking precedence over the file's.
func LoadWith(path string, overrides ...Override) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		reason := err.Error()
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			reason = pe.Err.Error() // the path is already in the prefix
		}
		return nil, ErrorList{{File: path, Msg: "cannot read config: " + reason, err: err}}
	}
	return parse(path, data, os.LookupEnv, true, overrides)
}

// Parse decodes data, read from file (used only in messages and stored in
// Config.File), expands ${VAR} from the environment, applies defaults and
// validates the result. On failure it returns a nil Config and an
// ErrorList holding every unknown key, wrong type and invalid value found,
// each with its line and column. Unlike Load it reads no other file: the
// tls files are only checked to be named.
func Parse(file string, data []byte) (*Config, error) {
	return parse(file, data, os.LookupEnv, false, nil)
}

// ParseWith is Parse with overrides, as LoadWith.
func ParseWith(file string, data []byte, overrides ...Override) (*Config, error) {
	return parse(file, data, os.LookupEnv, false, overrides)
}

func parse(file string, data []byte, lookup func(string) (string, bool), files bool, overrides []Override) (*Config, error) {
	if e := checkText(file, data); e != nil {
		return nil, ErrorList{e}
	}
	root, err := readDocument(file, data)
	if err != nil {
		return nil, ErrorList{err}
	}

	cfg := &Config{}
	w := &walker{file: file, lookup: lookup, pos: newPositions(), active: map[*yaml.Node]bool{}}
	if root != nil {
		w.decode(root, reflect.ValueOf(cfg).Elem(), "")
		w.strategyOptions(cfg)
	}
	for _, o := range overrides {
		if err := o.apply(cfg, w.pos); err != nil {
			w.errs = append(w.errs, &Error{Msg: err.Error()})
		}
	}
	cfg.File = file
	cfg.pos = w.pos
	applyDefaults(cfg, w.pos)

	// Validate even when decoding failed, so one run shows every problem;
	// the checker skips paths that already have a decoding error.
	bad := make(map[string]bool, len(w.errs))
	for _, e := range w.errs {
		if e.path != "" {
			bad[e.path] = true
		}
	}
	ch := &checker{file: file, pos: w.pos, bad: bad, files: files}
	// A file that is not a mapping at all has nothing worth validating.
	if root == nil || root.Kind == yaml.MappingNode || isNull(root) {
		ch.config(cfg)
	}
	if err := append(w.errs, ch.errs...).err(); err != nil {
		// The warnings go with the errors: whoever fixes the file reads
		// them in the same pass.
		return nil, append(err.(ErrorList), ch.warns...).sorted()
	}
	cfg.Warnings = ch.warns.sorted()
	return cfg, nil
}

// readDocument parses data into a node tree and returns its root, or nil
// for a file with no content. A second document ("---") is an error
// because only the first would be used.
func readDocument(file string, data []byte) (*yaml.Node, *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: file, Line: extra.Line, Col: extra.Column,
			Msg: "a second YAML document: a config file holds exactly one (remove the ---)"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(file, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// checkText rejects bytes YAML does not allow, with their exact position;
// the YAML parser reports these without any.
func checkText(file string, data []byte) *Error {
	// yaml.v3 also reads UTF-16 with a byte order mark; leave that to it.
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return nil
	}
	line, col := 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && size <= 1:
			return &Error{File: file, Line: line, Col: col, Msg: "invalid UTF-8: save the file as UTF-8"}
		case !yamlPrintable(r):
			return &Error{File: file, Line: line, Col: col,
				Msg: "control character " + strconv.QuoteRuneToASCII(r) + " is not allowed in YAML"}
		}
		data = data[size:]
		col++
		if r == '\n' {
			line, col = line+1, 1
		}
	}
	return nil
}

// yamlPrintable reports whether r may appear in a YAML stream (YAML 1.2
// section 5.1, "c-printable").
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E:
		return true
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}
