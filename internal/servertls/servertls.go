// Package servertls builds the TLS the proxy speaks to https servers from
// their servers[].tls settings, and dials it per server address, for the
// forwarding transports and the health checker alike.
package servertls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tbsphathuynh/proxy/config"
)

// ClientConfig returns the tls.Config for a server whose settings are t;
// a nil t gives the system's roots. It reads the files t names.
func ClientConfig(t *config.ServerTLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t == nil {
		return c, nil
	}
	c.ServerName = t.ServerName
	c.InsecureSkipVerify = t.InsecureSkipVerify
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate found", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file and key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// Dialer opens TLS connections to servers, each with the settings of its
// address, and to any other address with the system's roots. Its zero
// value is not usable: build one with New.
type Dialer struct {
	// byAddr holds the settings of each host:port written with a tls
	// section; it is not changed after New.
	byAddr map[string]*tls.Config
	// timeout bounds the connect and, again, the handshake.
	timeout time.Duration
	// protos are offered through ALPN: h2 only where the transport using
	// the dialer speaks it, or a server picking h2 would get HTTP/1.1.
	protos []string
}

// New returns a dialer for the settings of each server address (host:port)
// in byAddr, offering protos through ALPN, with timeout bounding the
// connect and the handshake (0: none).
func New(byAddr map[string]*tls.Config, protos []string, timeout time.Duration) *Dialer {
	return &Dialer{byAddr: byAddr, timeout: timeout, protos: protos}
}

// DialTLSContext dials addr and completes the TLS handshake, as
// http.Transport's hook of the same name expects.
func (d *Dialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	raw, err := (&net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.config(addr)
	hctx := ctx
	if d.timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// config is the tls.Config for one dial of addr: its own settings, the
// name to verify defaulting to the address's host as http.Transport's
// would.
func (d *Dialer) config(addr string) *tls.Config {
	base := d.byAddr[addr]
	var c *tls.Config
	if base == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		c = base.Clone()
	}
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	c.NextProtos = d.protos
	return c
}

// Settings maps the address (host:port) of each https server with a tls
// section to its settings. Two servers at one address share their
// settings (validation sees to it).
type Settings map[string]*config.ServerTLS

// Collect gathers the settings of servers; it returns nil when none has a
// tls section, so the default TLS of net/http is used.
func Collect(servers []config.Server) Settings {
	var s Settings
	for _, sv := range servers {
		if sv.TLS == nil {
			continue
		}
		if s == nil {
			s = Settings{}
		}
		s[Addr(sv.URL)] = sv.TLS
	}
	return s
}

// Addr is the host:port connections to an https server URL are dialled
// and pooled by; "" for a URL that does not parse.
func Addr(raw string) string {
	rest, ok := strings.CutPrefix(raw, "https://")
	if !ok {
		rest, _ = strings.CutPrefix(raw, "HTTPS://")
	}
	host, _, _ := strings.Cut(rest, "/")
	host = strings.ToLower(host)
	if _, _, err := net.SplitHostPort(host); err != nil {
		h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		return net.JoinHostPort(h, "443")
	}
	return host
}

// Key is a string naming the settings and the files they name as they are
// now (size and modification time), so transports are shared between
// upstreams with the same settings, and a reload after a certificate file
// changed builds a new one that reads it.
func (s Settings) Key() string {
	if len(s) == 0 {
		return ""
	}
	addrs := make([]string, 0, len(s))
	for a := range s {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var b strings.Builder
	for _, a := range addrs {
		t := s[a]
		fmt.Fprintf(&b, "%s|%s|%v|%s|%s|%s;", a, t.ServerName, t.InsecureSkipVerify, stamp(t.CAFile), stamp(t.CertFile), stamp(t.KeyFile))
	}
	return b.String()
}

func stamp(file string) string {
	if file == "" {
		return ""
	}
	fi, err := os.Stat(file)
	if err != nil {
		return file
	}
	return fmt.Sprintf("%s@%d/%d", file, fi.ModTime().UnixNano(), fi.Size())
}

// Build reads the files of every setting and returns a dialer offering
// protos; the error names the address whose files failed.
func (s Settings) Build(protos []string, timeout time.Duration) (*Dialer, error) {
	byAddr := make(map[string]*tls.Config, len(s))
	var errs []error
	for a, t := range s {
		c, err := ClientConfig(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("server %s: tls: %w", a, err))
			continue
		}
		byAddr[a] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return New(byAddr, protos, timeout), nil
}
