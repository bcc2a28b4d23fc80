package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var position = regexp.MustCompile(`^[^:]+:\d+:\d+: `)

// Load reads the files of a server's tls section as the proxy will, and
// names the key whose file is wrong.
func TestLoadChecksServerTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, "a", time.Now().Add(24*time.Hour))
	_, otherKey := writePair(t, dir, "b", time.Now().Add(24*time.Hour))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name, server, top string
		want              string // "" for none; the message after FILE:LINE:COL
	}{
		{"good", "{url: https://a:8443, tls: {ca_file: " + cert + ", server_name: a.internal, cert_file: " + cert + ", key_file: " + key + "}}", "", ""},
		{"missing ca_file", "{url: https://a, tls: {ca_file: " + missing + "}}", "",
			`servers[0].tls.ca_file: cannot read "` + missing + `": no such file or directory`},
		{"ca_file holds a key", "{url: https://a, tls: {ca_file: " + key + "}}", "",
			`servers[0].tls.ca_file: "` + key + `": holds a private key, not a certificate (are cert_file and key_file swapped?)`},
		{"key of another certificate", "{url: https://a, tls: {cert_file: " + cert + ", key_file: " + otherKey + "}}", "",
			`servers[0].tls.key_file: "` + otherKey + `": private key does not match public key`},
		{"cert without key", "{url: https://a, tls: {cert_file: " + cert + "}}", "",
			`servers[0].tls.key_file: required with cert_file`},
		{"plain http server", "{url: http://a, tls: {insecure_skip_verify: true}}", "",
			`servers[0].tls: applies only to an https:// server, not "http://a"`},
		{"one address, two settings", "{url: https://a/x, tls: {server_name: x}}, {url: https://a:443/y, tls: {server_name: y}}", "",
			`servers[1].tls: differs from servers[0].tls, which has the same address a:443`},
		{"min_version", "{url: http://a}", "tls: {cert_file: " + cert + ", key_file: " + key + ", min_version: \"1.1\"}\n",
			`tls.min_version: must be "1.2" or "1.3", not "1.1"`},
		{"missing client_ca_file", "{url: http://a}", "tls: {cert_file: " + cert + ", key_file: " + key + ", client_ca_file: " + missing + "}\n",
			`tls.client_ca_file: cannot read "` + missing + `": no such file or directory`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.Repeat("s", i+1)+".yaml")
			src := "servers: [" + tc.server + "]\n" + tc.top
			if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			var got string
			if _, err := Load(file); err != nil {
				// The position points at the value; the message is
				// what is checked here.
				got = position.ReplaceAllString(err.Error(), "")
			}
			if want := tc.want; got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// http_redirect, hsts and http3 need a TLS listener to point at.
func TestEdgeNeedsTLS(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"http_redirect: \":80\"\n", "t.yaml:2:16: http_redirect: needs tls: there is no https listener to send clients to"},
		{"hsts: {max_age: 365d}\n", "t.yaml:2:7: hsts: needs tls: browsers ignore Strict-Transport-Security over plain HTTP (RFC 6797 §7.2)"},
		{"tls: {cert_file: c, key_file: k}\nhsts: {include_subdomains: true}\n", `t.yaml:3:7: hsts.max_age: must be a duration greater than 0, such as "10s"`},
		{"http3: true\n", "t.yaml:2:8: http3: needs tls: HTTP/3 runs over QUIC, which is always encrypted (RFC 9001)"},
		{"tls: {cert_file: c, key_file: k}\nhttp_redirect: \":8080\"\n", `t.yaml:3:16: http_redirect: must differ from listen (":8080"): both would take the same port`},
	} {
		_, err := Parse("t.yaml", []byte("servers: [{url: http://a}]\n"+tc.src))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\ngot  %v\nwant %s", tc.src, err, tc.want)
		}
	}
}
