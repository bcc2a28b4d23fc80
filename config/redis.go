package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// redis checks a rate_limit.redis section; p ends in "redis.".
func (c *checker) redis(p string, r *Redis) {
	if r.Address != "" && len(r.Addresses) > 0 {
		c.errf(p+"addresses", "either address or addresses, not both (address is a one-element addresses)")
	}
	addrs := r.Addrs()
	switch {
	case len(r.Addresses) > 0:
		for i, a := range r.Addresses {
			c.listen(fmt.Sprintf("%saddresses[%d]", p, i), a)
		}
	case r.Address != "":
		c.listen(p+"address", r.Address)
	default:
		c.errf(p+"addresses", "required: at least one host:port")
	}
	c.positive(p+"timeout", r.Timeout)
	if r.DB < 0 {
		c.errf(p+"db", "must be ≥ 0, not %d", r.DB)
	}
	switch {
	case r.MasterName != "" && r.Cluster:
		c.errf(p+"cluster", "cannot be combined with master_name: Sentinel watches one master, a cluster has many")
	case r.MasterName == "" && (r.Cluster || len(addrs) > 1) && r.DB != 0:
		// CLUSTER: SELECT is refused in cluster mode.
		c.errf(p+"db", "must be 0 with a Redis Cluster (%d addresses, no master_name), which has only database 0", len(addrs))
	}
	if r.Password == "" && r.Username != "" {
		c.errf(p+"password", "required with username (Redis ACL users log in with AUTH username password)")
	}
	if t := r.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			c.errf(p+"tls.cert_file", "cert_file and key_file go together: the client certificate and its key")
		}
		if c.files {
			c.redisTLS(p, r)
		}
	}
}

// redisTLS reads the TLS files of a Redis section as the proxy will at
// start and, if they load, makes one TLS handshake with each address, so
// that a wrong ca_file or server_name is refused by -validate and at
// start, naming the setting, rather than show up as a store outage on the
// first request. An address that cannot be reached only earns a warning:
// Redis being down is an outage the proxy rides out (on_store_error), not
// a mistake in the file.
func (c *checker) redisTLS(p string, r *Redis) {
	t := r.TLS
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	ok := true
	if t.CAFile != "" {
		pool, msg := readCAFile(t.CAFile)
		if msg != "" {
			c.errf(p+"tls.ca_file", "%s", msg)
			ok = false
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" && t.KeyFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			c.errf(p+"tls.key_file", "cannot load %s and %s: %s", quote(t.CertFile), quote(t.KeyFile), strings.TrimPrefix(readReason(err), "tls: "))
			ok = false
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if !ok {
		return
	}
	addrs := r.Addrs()
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		if checkHostPort(a) != "" {
			continue // already reported
		}
		wg.Go(func() { errs[i] = handshake(a, cfg, max(r.Timeout.D(), time.Second)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		key, msg := handshakeProblem(t, addrs[i], err)
		if key == "" {
			c.warnf(p+"tls", "%s", msg)
		} else {
			c.errf(p+key, "%s", msg)
		}
	}
}

// readCAFile loads the certificates of a PEM file, or says why it cannot.
func readCAFile(file string) (*x509.CertPool, string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Sprintf("cannot read %s: %s", quote(file), readReason(err))
	}
	if _, msg := firstCertificate(data); msg != "" {
		return nil, quote(file) + ": " + msg
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, quote(file) + ": no certificate could be loaded"
	}
	return pool, ""
}

// handshake makes one TLS handshake with addr and closes the connection.
func handshake(addr string, cfg *tls.Config, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// handshakeProblem names the setting a failed handshake with addr points
// to ("" when it points to none: the address was not reached) and says
// what went wrong.
func handshakeProblem(t *RedisTLS, addr string, err error) (key, msg string) {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown) && t.CAFile != "":
		return "tls.ca_file", fmt.Sprintf("the certificate of %s is not signed by a CA in %s", addr, quote(t.CAFile))
	case errors.As(err, &unknown):
		return "tls", fmt.Sprintf("the certificate of %s is not signed by a CA this system trusts; set ca_file to the CA that signed it", addr)
	case errors.As(err, &host):
		return "tls.server_name", fmt.Sprintf("the certificate of %s is not valid for %s (%s); set server_name to a name it holds", addr, quote(host.Host), strings.TrimPrefix(host.Error(), "x509: "))
	case errors.As(err, &invalid):
		return "tls", fmt.Sprintf("the certificate of %s is refused: %s", addr, strings.TrimPrefix(invalid.Error(), "x509: "))
	case errors.As(err, &record):
		return "tls", fmt.Sprintf("%s does not answer with TLS; is it a TLS port (Redis' tls-port)?", addr)
	}
	return "", fmt.Sprintf("could not check the certificate of %s: %s", addr, err)
}
