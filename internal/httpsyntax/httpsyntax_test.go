package httpsyntax

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/net/http/httpguts"
)

func TestTcharMatchesHttpguts(t *testing.T) {
	for c := range 256 {
		if got, want := IsTchar(byte(c)), httpguts.IsTokenRune(rune(c)) && c < 0x80; got != want {
			t.Errorf("IsTchar(%q) = %v, want %v", byte(c), got, want)
		}
	}
}

func TestHasTokenMatchesHttpguts(t *testing.T) {
	for _, v := range []string{"close", "Close", " keep-alive , CLOSE ", "closed", "xclose", "keep-alive", "", ",,close,,", "\tclose\t", "clo se", "close;q=1"} {
		if got, want := HasToken([]byte(v), "close"), httpguts.HeaderValuesContainsToken([]string{v}, "close"); got != want {
			t.Errorf("HasToken(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		b, s string
		want bool
	}{
		{"Content-Length", "content-length", true},
		{"CONTENT-LENGTH", "Content-Length", true},
		{"Content-Lengthx", "content-length", false},
		{"Hos^", "host", false},
		{"Ho_t", "ho\x7ft", false},
	} {
		if got := EqualFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v", tc.b, tc.s, got)
		}
	}
}

func TestPlainPathMatchesNetURL(t *testing.T) {
	for c := range 256 {
		p := "/a" + string([]byte{byte(c)}) + "b"
		u := url.URL{Path: p}
		escaped := u.EscapedPath() == p
		parsed, err := url.ParseRequestURI(p)
		roundTrip := err == nil && parsed.Path == p && parsed.RawPath == ""
		if got := PlainPath(p); got != (escaped && roundTrip) {
			t.Errorf("PlainPath(%q) = %v; EscapedPath unchanged %v, parses back unchanged %v", p, got, escaped, roundTrip)
		}
	}
}

// FuzzAppendFieldValue checks that a value is written as net/http's
// Header.Write writes it.
func FuzzAppendFieldValue(f *testing.F) {
	for _, v := range []string{"", "plain", "  padded\t", "a\r\nInjected: yes", "\r\n", "tab\tinside", " \t\r\n x \n", "ünïcode"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var want bytes.Buffer
		http.Header{"K": {v}}.Write(&want)
		got := append([]byte("K: "), AppendFieldValue(nil, v)...)
		got = append(got, "\r\n"...)
		if string(got) != want.String() {
			t.Errorf("value %q written as %q, net/http writes %q", v, got, want.String())
		}
	})
}
