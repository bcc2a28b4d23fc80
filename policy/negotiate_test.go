package policy

import (
	"strings"
	"testing"
)

var negotiateCases = []struct {
	lines []string
	want  string
}{
	{nil, ""},
	{[]string{""}, ""},
	{[]string{"gzip"}, "gzip"},
	{[]string{"gzip, br"}, "br"}, // the configured order decides, not the client's
	{[]string{"GZIP;q=0.5"}, "gzip"},
	{[]string{"br;q=0, gzip"}, "gzip"},
	{[]string{"br;q=0", "gzip;q=0"}, ""},
	{[]string{"*"}, "zstd"},
	{[]string{"*;q=0"}, ""},
	{[]string{"*, zstd;q=0"}, "br"},
	{[]string{"identity"}, ""},
	{[]string{"br;q=0, br"}, "br"}, // listed twice: accepted once is accepted
	{[]string{"br, br;q=0"}, "br"},
	{[]string{" zstd ; q=0 , gzip"}, "gzip"},
	{[]string{"zstd;q = 0"}, "zstd"}, // no spaces around "=" (RFC 9110 §12.4.2): not a weight
	{[]string{"gzip;q=x"}, "gzip"},   // a q it cannot read counts as 1
}

func TestNegotiate(t *testing.T) {
	algs := []string{"zstd", "br", "gzip"}
	for _, c := range negotiateCases {
		if got := negotiate(c.lines, algs); got != c.want {
			t.Errorf("Accept-Encoding %q: %q, want %q", c.lines, got, c.want)
		}
	}
}

// FuzzNegotiate: any Accept-Encoding picks one of the configured codings
// or none, and never one the client refused with q=0 alone.
func FuzzNegotiate(f *testing.F) {
	for _, c := range negotiateCases {
		f.Add(strings.Join(c.lines, "\n"))
	}
	algs := []string{"zstd", "br", "gzip"}
	f.Fuzz(func(t *testing.T, header string) {
		lines := strings.Split(header, "\n")
		got := negotiate(lines, algs)
		if got == "" {
			return
		}
		found := false
		for _, a := range algs {
			found = found || a == got
		}
		if !found {
			t.Fatalf("%q: %q is not configured", header, got)
		}
		if !strings.Contains(strings.ToLower(header), got) && !strings.Contains(header, "*") {
			t.Fatalf("%q: %q chosen though neither it nor * is listed", header, got)
		}
	})
}

func BenchmarkNegotiate(b *testing.B) {
	algs := []string{"zstd", "br", "gzip"}
	lines := []string{"gzip, deflate, br, zstd"}
	b.ReportAllocs()
	for b.Loop() {
		negotiate(lines, algs)
	}
}
