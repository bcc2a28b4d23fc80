package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLSCertificateExpiry is the name of the gauge of seconds until each
// served certificate expires.
const TLSCertificateExpiry = "proxy_tls_certificate_expiry_seconds"

// CertificateStat is one name the TLS listener serves a certificate for.
type CertificateStat struct {
	Domain   string
	NotAfter time.Time
}

// NewCertificateCollector returns a collector exporting
// proxy_tls_certificate_expiry_seconds{domain} from src, read at each
// scrape so renewals and reloads show with no other call. now is the
// clock; nil means time.Now. A name without a certificate yet exports no
// series: an alert on absent() or on a low value catches both.
func NewCertificateCollector(src func() []CertificateStat, now func() time.Time) prometheus.Collector {
	if now == nil {
		now = time.Now
	}
	return &certCollector{src: src, now: now, desc: prometheus.NewDesc(TLSCertificateExpiry,
		"Seconds until the certificate the TLS listener serves for the domain expires (negative once expired), for certificate files and ACME or internal certificates alike.",
		[]string{"domain"}, nil)}
}

type certCollector struct {
	src  func() []CertificateStat
	now  func() time.Time
	desc *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	seen := map[string]bool{}
	for _, st := range c.src() {
		// A duplicate label set would fail the whole scrape.
		if st.NotAfter.IsZero() || seen[st.Domain] {
			continue
		}
		seen[st.Domain] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, st.NotAfter.Sub(now).Seconds(), st.Domain)
	}
}
