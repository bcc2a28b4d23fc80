// Package health keeps failed servers out of the pool: active checks probe
// every server on an interval (Checker), passive health ejects servers that
// fail live traffic (Passive). Both change a server's state by
// compare-and-swap, and log and report only real transitions.
package health

import (
	"fmt"
	"strconv"
	"strings"
)

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// StatusRanges is a set of accepted status codes; the zero value accepts
// 200-399, nginx's and HAProxy's default.
type StatusRanges []StatusRange

// Contains reports whether code is accepted.
func (rs StatusRanges) Contains(code int) bool {
	if len(rs) == 0 {
		return code >= 200 && code <= 399
	}
	for _, r := range rs {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// String formats the ranges the way ParseStatusRanges reads them.
func (rs StatusRanges) String() string {
	if len(rs) == 0 {
		return "200-399"
	}
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r.Lo))
		if r.Hi != r.Lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r.Hi))
		}
	}
	return b.String()
}

// ParseStatusRanges parses expected_status: a comma-separated list of
// codes ("204"), ranges ("200-399") and classes ("2xx"), e.g.
// "200-299,301". An empty string means the default, 200-399.
func ParseStatusRanges(s string) (StatusRanges, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var rs StatusRanges
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		r, err := parseStatusRange(part)
		if err != nil {
			return nil, fmt.Errorf("health: expected_status %q: %w", s, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func parseStatusRange(part string) (StatusRange, error) {
	if len(part) == 3 && strings.HasSuffix(strings.ToLower(part), "xx") {
		c := int(part[0] - '0')
		if c < 1 || c > 5 {
			return StatusRange{}, fmt.Errorf("%q is not a status class 1xx-5xx", part)
		}
		return StatusRange{c * 100, c*100 + 99}, nil
	}
	lo, hi, isRange := strings.Cut(part, "-")
	a, err := parseCode(lo)
	if err != nil {
		return StatusRange{}, err
	}
	b := a
	if isRange {
		if b, err = parseCode(hi); err != nil {
			return StatusRange{}, err
		}
		if b < a {
			return StatusRange{}, fmt.Errorf("range %q runs backwards", part)
		}
	}
	return StatusRange{a, b}, nil
}

func parseCode(s string) (int, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(s)
	if err != nil || len(s) != 3 || n < 100 || n > 599 {
		return 0, fmt.Errorf("%q is not a status code 100-599", s)
	}
	return n, nil
}
