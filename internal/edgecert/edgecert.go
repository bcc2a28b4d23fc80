// Package edgecert obtains, renews and serves the TLS certificates of the
// proxy's own listener when they come from an ACME CA (tls.acme) or from a
// local CA (tls.internal), on top of certmagic. It answers the ACME
// challenges through hooks the listeners call; it opens no listener of
// its own while the proxy's listeners hold the challenge ports.
package edgecert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/tbsphathuynh/proxy/config"
)

// Sources of a certificate, as /api/certificates names them.
const (
	SourceFile     = "file"
	SourceACME     = "acme"
	SourceInternal = "internal"
)

// ALPNProtocol is the protocol an ACME server offers when it validates a
// tls-alpn-01 challenge (RFC 8737 §6.2); the listener must accept it.
const ALPNProtocol = "acme-tls/1"

// Options are what a Manager is built from.
type Options struct {
	// TLS is the config's tls section, with ACME or Internal set.
	TLS *config.TLS
	// Log receives certmagic's log and the manager's own.
	Log *slog.Logger
	// RenewCheckInterval is how often certificates are checked for
	// renewal; 0 means certmagic's default (10 minutes).
	RenewCheckInterval time.Duration
	// RenewalWindowRatio is the part of a certificate's lifetime left
	// when it is renewed; 0 means certmagic's default (1/3).
	RenewalWindowRatio float64
	// DisableARI ignores the CA's renewal information (RFC 9773), so that
	// RenewalWindowRatio alone decides.
	DisableARI bool
}

// Info is what is known of one name's certificate.
type Info struct {
	Domain    string
	Issuer    string
	NotAfter  time.Time
	Source    string
	LastError string
}

// Manager keeps the certificates of one tls section. Build it with New,
// start it with Manage, and Stop it once no listener uses it.
type Manager struct {
	magic   *certmagic.Config
	cache   *certmagic.Cache
	issuer  *certmagic.ACMEIssuer // nil for the local CA
	domains []string
	source  string
	key     string
	alpn    bool
	log     *slog.Logger

	// mu guards names and errs: the names certificates were obtained
	// for (on demand ones included) and the last failure of each.
	mu    sync.Mutex
	names []string
	errs  map[string]string

	stopOnce sync.Once
}

// Key names the settings a Manager was built from: a reload with the same
// key keeps the running Manager.
func Key(t *config.TLS) string {
	if t == nil || (t.ACME == nil && !t.Internal) {
		return ""
	}
	a := t.ACME
	if a == nil {
		a = &config.ACME{}
	}
	return fmt.Sprintf("%v|%s|%q|%v|%s|%s|%s|%s|%q", t.Internal, a.Email, a.Domains, a.OnDemand, a.Ask, a.CA, a.CARoot, storageDir(a), a.Challenges)
}

// storageDir is where certificates are kept: tls.acme.storage, or the
// data directory of the XDG Base Directory spec.
func storageDir(a *config.ACME) string {
	if a != nil && a.Storage != "" {
		return a.Storage
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "proxy")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "proxy")
	}
	return "proxy-data"
}

// New builds the Manager of t, reading ca_root and, for the local CA, its
// root; it contacts no CA and starts only certmagic's maintenance loop.
func New(o Options) (*Manager, error) {
	t := o.TLS
	a := t.ACME
	if a == nil {
		a = &config.ACME{}
	}
	m := &Manager{
		domains: lowerAll(a.Domains),
		key:     Key(t),
		log:     o.Log,
		errs:    map[string]string{},
	}
	m.names = slices.Clone(m.domains)
	storage := &certmagic.FileStorage{Path: storageDir(a)}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: o.RenewCheckInterval,
		Logger:             zapToSlog(o.Log.Handler()),
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage:            storage,
		RenewalWindowRatio: o.RenewalWindowRatio,
		DisableARI:         o.DisableARI,
		OnEvent:            m.event,
		Logger:             zapToSlog(o.Log.Handler()),
		// Let's Encrypt ended OCSP in 2025; stapling would only make the
		// proxy reach out to responders nobody asked for.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	if t.Internal {
		ca, err := loadLocalCA(context.Background(), storage)
		if err != nil {
			m.cache.Stop()
			return nil, fmt.Errorf("tls.internal: %w", err)
		}
		m.source = SourceInternal
		m.magic.Issuers = []certmagic.Issuer{ca}
		m.log.Info("local CA issues the certificates; trust its root to use them", "root", filepath.Join(storage.Path, rootCertKey))
		// A client without SNI (an IP address in the URL) gets
		// localhost's certificate rather than a failed handshake.
		m.magic.DefaultServerName = "localhost"
		if len(m.domains) == 0 {
			// For development any name is fine: the CA is ours.
			m.magic.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: func(context.Context, string) error { return nil }}
		}
		return m, nil
	}
	iss := certmagic.ACMEIssuer{
		CA:     a.CA,
		Email:  a.Email,
		Agreed: true,
		Logger: zapToSlog(o.Log.Handler()),
	}
	if iss.CA == "" {
		iss.CA = config.DefaultACMECA
	}
	challenges := a.Challenges
	if len(challenges) == 0 {
		challenges = []string{config.ChallengeTLSALPN01}
	}
	iss.DisableHTTPChallenge = !slices.Contains(challenges, config.ChallengeHTTP01)
	iss.DisableTLSALPNChallenge = !slices.Contains(challenges, config.ChallengeTLSALPN01)
	m.alpn = !iss.DisableTLSALPNChallenge
	if a.CARoot != "" {
		pem, err := os.ReadFile(a.CARoot)
		if err != nil {
			m.cache.Stop()
			return nil, fmt.Errorf("tls.acme.ca_root: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			m.cache.Stop()
			return nil, fmt.Errorf("tls.acme.ca_root %s: no PEM certificate found", a.CARoot)
		}
		iss.TrustedRoots = pool
	}
	m.issuer = certmagic.NewACMEIssuer(m.magic, iss)
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	m.source = SourceACME
	if a.OnDemand {
		m.magic.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: askFunc(a.Ask)}
	}
	return m, nil
}

// SetChallengeAddrs tells the ACME issuer which ports the proxy's own
// listeners answer challenges on: finding them taken, certmagic leaves
// the answering to the hooks (HandleHTTPChallenge, GetCertificate) rather
// than opening listeners of its own. "" leaves a challenge's default.
func (m *Manager) SetChallengeAddrs(httpAddr, tlsAddr string) {
	if m.issuer == nil {
		return
	}
	if p := port(httpAddr); p > 0 {
		m.issuer.AltHTTPPort = p
	}
	if p := port(tlsAddr); p > 0 {
		m.issuer.AltTLSALPNPort = p
	}
}

func port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Manage obtains the certificates of the configured domains, or loads
// them from storage, renewing those due; it returns once each is ready
// or ctx ends. Renewal then goes on in the background until Stop.
func (m *Manager) Manage(ctx context.Context) error {
	if len(m.domains) == 0 {
		return nil
	}
	err := m.magic.ManageSync(ctx, m.domains)
	if err == nil {
		return nil
	}
	// A renewal that fails while every name still has a valid
	// certificate from storage must not keep the proxy down: the CA may
	// be away for a while, and renewal goes on in the background.
	now := time.Now()
	for _, d := range m.domains {
		if !m.validCert(d, now) {
			return fmt.Errorf("tls: %w", err)
		}
	}
	m.mu.Lock()
	for _, d := range m.domains {
		if m.errs[d] == "" {
			m.errs[d] = problemText(err)
		}
	}
	m.mu.Unlock()
	m.log.Warn("certificates not renewed; serving the stored ones until they are", "err", err)
	return nil
}

// validCert reports a certificate for name in the cache, not expired.
func (m *Manager) validCert(name string, now time.Time) bool {
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && now.Before(c.Leaf.NotAfter) {
			return true
		}
	}
	return false
}

// Key is the settings' key (see Key).
func (m *Manager) Key() string { return m.key }

// ALPN reports whether the listener must accept acme-tls/1 (tls-alpn-01).
func (m *Manager) ALPN() bool { return m.alpn }

// GetCertificate returns the certificate for a handshake, answering
// tls-alpn-01 challenges and obtaining on-demand certificates.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// HandleHTTPChallenge answers an http-01 challenge request and reports
// whether r was one.
func (m *Manager) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if m.issuer == nil {
		return false
	}
	return m.issuer.HandleHTTPChallenge(w, r)
}

// Stop ends certmagic's maintenance of the certificates (renewals); the
// certificates stay in storage.
func (m *Manager) Stop() {
	m.stopOnce.Do(m.cache.Stop)
}

// Certificates lists every name managed, with its certificate's expiry
// and issuer, or the last error when there is none yet.
func (m *Manager) Certificates() []Info {
	m.mu.Lock()
	names := slices.Clone(m.names)
	errs := make(map[string]string, len(m.errs))
	for k, v := range m.errs {
		errs[k] = v
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(names))
	for _, n := range names {
		in := Info{Domain: n, Source: m.source, LastError: errs[n]}
		for _, c := range m.cache.AllMatchingCertificates(n) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(in.NotAfter) {
				in.NotAfter = c.Leaf.NotAfter
				in.Issuer = IssuerName(c.Leaf)
			}
		}
		out = append(out, in)
	}
	return out
}

// IssuerName is how a certificate's issuer is shown: its common name, or
// the whole distinguished name when it has none.
func IssuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}

// event records certmagic's outcomes: the names obtained (on-demand ones
// are learnt here) and the last failure of each, with the CA's problem
// document when it sent one.
func (m *Manager) event(_ context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	if name == "" {
		return nil
	}
	switch event {
	case "cert_obtained":
		m.mu.Lock()
		if !slices.Contains(m.names, name) {
			m.names = append(m.names, name)
		}
		delete(m.errs, name)
		m.mu.Unlock()
		renewal, _ := data["renewal"].(bool)
		m.log.Info("certificate obtained", "domain", name, "renewal", renewal, "source", m.source)
	case "cert_failed":
		err, _ := data["error"].(error)
		msg := "unknown error"
		if err != nil {
			msg = problemText(err)
		}
		m.mu.Lock()
		if !slices.Contains(m.names, name) {
			m.names = append(m.names, name)
		}
		m.errs[name] = msg
		m.mu.Unlock()
		renewal, _ := data["renewal"].(bool)
		m.log.Error("certificate not obtained", "domain", name, "renewal", renewal, "err", msg)
	}
	return nil
}

// problemText is err with the CA's problem document (RFC 8555 §6.7)
// spelled out: its type, detail and the detail of each subproblem.
func problemText(err error) string {
	var p acme.Problem
	if !errors.As(err, &p) {
		return err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", p.Type, p.Detail)
	for _, sp := range p.Subproblems {
		fmt.Fprintf(&b, "; %s: %s: %s", sp.Identifier.Value, sp.Type, sp.Detail)
	}
	return b.String()
}

// askFunc asks url whether a certificate may be obtained on demand for a
// name: GET url?domain=NAME, yes on a 2xx answer.
func askFunc(ask string) func(context.Context, string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context, name string) error {
		u, err := url.Parse(ask)
		if err != nil {
			return err
		}
		q := u.Query()
		q.Set("domain", name)
		u.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("tls.acme.ask: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("tls.acme.ask refused %s: %s", name, resp.Status)
		}
		return nil
	}
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}
