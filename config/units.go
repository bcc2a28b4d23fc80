package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Compile-time checks that the unit types decode from YAML and text (the
// latter lets flag.TextVar and encoding/json use them too).
var (
	_ yaml.Unmarshaler = (*Duration)(nil)
	_ yaml.Unmarshaler = (*Size)(nil)
	_ yaml.Marshaler   = Duration(0)
	_ yaml.Marshaler   = Size(0)
)

// String formats d the way Go does: "10s", "1m30s", "250ms".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string, so a dumped config reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes d as a duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration string such as "10s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML accepts a Go duration such as "10s", "250ms" or "1m30s".
// Negative values are rejected, and so are bare numbers other than 0,
// because "timeout: 30" could mean seconds or milliseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return errors.New(`must be a duration such as "10s", not ` + describe(n))
	}
	return d.UnmarshalText([]byte(n.Value))
}

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("must not be negative, got " + quote(s))
	}
	if isPlainNumber(s) {
		return 0, errors.New(quote(s) + ` needs a unit, such as "` + s + `s" or "` + s + `ms"`)
	}
	if n, ok := strings.CutSuffix(s, "d"); ok && isPlainNumber(n) {
		// Whole days, as HSTS max-age is usually written ("365d");
		// time.ParseDuration stops at hours.
		days, err := strconv.ParseFloat(n, 64)
		if err == nil && days*24 < float64(math.MaxInt64/int64(time.Hour)) {
			return Duration(days * 24 * float64(time.Hour)), nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(quote(s) + ` is not a duration; write a number and a unit (d, h, m, s, ms), such as "10s" or "1m30s"`)
	}
	return Duration(v), nil
}

// Byte size units. Decimal units (KB) are powers of 1000 and binary units
// (KiB) powers of 1024, as IEC 80000-13 defines them.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

var sizeUnits = []struct {
	suffix string
	mult   Size
}{
	// Longer suffixes first, so "KiB" is not read as "B".
	{"kib", KiB}, {"mib", MiB}, {"gib", GiB},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"b", 1},
}

// String formats s in the largest binary unit that divides it exactly, so
// 65536 prints as "64KiB".
func (s Size) String() string {
	for _, u := range []struct {
		name string
		mult Size
	}{{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if s != 0 && s%u.mult == 0 {
			return strconv.FormatInt(int64(s/u.mult), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalYAML writes s with a unit when one divides it exactly.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText writes s with a unit when one divides it exactly.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a byte count such as "65536", "64KiB" or "1MB".
func (s *Size) UnmarshalText(b []byte) error {
	v, err := parseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalYAML accepts an integer number of bytes or a string with a unit:
// B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return errors.New(`must be a size such as 65536 or "64KiB", not ` + describe(n))
	}
	return s.UnmarshalText([]byte(n.Value))
}

func parseSize(text string) (Size, error) {
	bad := errors.New(quote(text) + ` is not a size; write bytes (65536) or a number and a unit (KB, MB, KiB, MiB), such as "64KiB"`)
	s := strings.TrimSpace(text)
	mult := Size(1)
	lower := strings.ToLower(s)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(s[:len(s)-len(u.suffix)])
			break
		}
	}
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("must not be negative, got " + quote(text))
	}
	if !isPlainNumber(s) || strings.ContainsAny(s, "+-.") {
		return 0, bad
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return 0, errors.New(quote(text) + " is too large")
	}
	return Size(n) * mult, nil
}

// isPlainNumber reports whether s is a decimal number such as "10", "-3"
// or "1.5", the shapes an operator types when they forget a unit.
func isPlainNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
