package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/testcert"
)

// writePair writes a self-signed certificate valid until notAfter and its
// key to dir, returning their paths.
func writePair(t *testing.T, dir, name string, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := testcert.Write(certFile, keyFile, notAfter); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Load reads the certificate and key as the proxy will at start, and says
// which file is wrong and where the file names it.
func TestLoadChecksTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, "a", time.Now().Add(24*time.Hour))
	_, otherKey := writePair(t, dir, "b", time.Now().Add(24*time.Hour))
	oldCert, oldKey := writePair(t, dir, "old", time.Now().Add(-24*time.Hour))
	garbage := filepath.Join(dir, "garbage.crt")
	if err := os.WriteFile(garbage, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")

	tests := []struct {
		name, cert, key string
		want            string // "" for none; FILE stands for the config's path
	}{
		{"good pair", cert, key, ""},
		{"missing certificate", missing, key, `FILE:3:14: tls.cert_file: cannot read "` + missing + `": no such file or directory`},
		{"missing key", cert, missing, `FILE:4:13: tls.key_file: cannot read "` + missing + `": no such file or directory`},
		{"not a certificate", garbage, key, `FILE:3:14: tls.cert_file: "` + garbage + `": no PEM certificate found (a file starting -----BEGIN CERTIFICATE-----)`},
		{"swapped", key, cert, `FILE:3:14: tls.cert_file: "` + key + `": holds a private key, not a certificate (are cert_file and key_file swapped?)`},
		{"key of another certificate", cert, otherKey, `FILE:4:13: tls.key_file: "` + otherKey + `": private key does not match public key`},
		{"expired", oldCert, oldKey, `FILE:3:14: warning: tls.cert_file: "` + oldCert + `" expired on ` +
			time.Now().Add(-24*time.Hour).UTC().Format(time.DateOnly) + `; clients will refuse it`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.Repeat("c", i+1)+".yaml")
			src := "servers: [{url: http://a}]\ntls:\n  cert_file: " + tc.cert + "\n  key_file: " + tc.key + "\n"
			if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(file)
			var got string
			switch {
			case err != nil:
				got = err.Error()
			case len(c.Warnings) > 0:
				got = c.Warnings.Error()
			}
			if want := strings.ReplaceAll(tc.want, "FILE", file); got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
	// Parse reads no file: a config in memory is checked for its keys only.
	if _, err := Parse("t.yaml", []byte("servers: [{url: http://a}]\ntls: {cert_file: "+missing+", key_file: "+missing+"}\n")); err != nil {
		t.Errorf("Parse read the tls files: %v", err)
	}
}
