package httpsyntax

import (
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
