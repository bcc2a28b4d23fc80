package servertls

import "testing"

// Addr is the address http.Transport dials for the URL, which is what
// the dialer looks settings up by.
func TestAddr(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://a", "a:443"},
		{"https://A.example:8443/base", "a.example:8443"},
		{"https://[::1]", "[::1]:443"},
		{"https://[::1]:9443/x", "[::1]:9443"},
		{"https://10.0.0.5:8443", "10.0.0.5:8443"},
	} {
		if got := Addr(tc.url); got != tc.want {
			t.Errorf("Addr(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}
