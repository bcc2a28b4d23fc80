package config

import (
	"errors"
	"strings"
)

// maxExpandDepth bounds nested defaults such as ${A:-${B:-x}}; real configs
// nest once at most, and the bound keeps hostile input cheap.
const maxExpandDepth = 8

// expand replaces ${NAME} and ${NAME:-default} in s with values from
// lookup. "$${" stands for a literal "${"; any other "$" is kept as is, so
// passwords containing "$" need no escaping.
//
// An unset variable without a default is an error rather than "": a typo in
// a variable name must not silently become an empty token or address.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	return expandDepth(s, lookup, 0)
}

func expandDepth(s string, lookup func(string) (string, bool), depth int) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	if depth > maxExpandDepth {
		return "", errors.New("${...} nested too deeply")
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := closingBrace(s, i+2)
			if end < 0 {
				return "", errors.New("unterminated ${ in " + quote(s) + ": add the closing }")
			}
			v, err := expandVar(s[i+2:end], lookup, depth)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// closingBrace returns the index of the "}" closing a "${" whose body
// starts at from, skipping nested ${...}, or -1.
func closingBrace(s string, from int) int {
	depth := 1
	for i := from; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// expandVar resolves the body of one ${...}: NAME or NAME:-default. The
// default, like the shell's, is used when the variable is unset or empty.
func expandVar(body string, lookup func(string) (string, bool), depth int) (string, error) {
	name, def, hasDef := strings.Cut(body, ":-")
	if !validEnvName(name) {
		return "", errors.New("${" + body + "}: " + quote(name) +
			" is not a variable name (letters, digits and _, not starting with a digit)")
	}
	v, ok := lookup(name)
	if hasDef {
		if ok && v != "" {
			return v, nil
		}
		return expandDepth(def, lookup, depth+1)
	}
	if !ok {
		return "", errors.New("environment variable " + name + " is not set (write ${" +
			name + ":-} to allow it to be empty)")
	}
	return v, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
