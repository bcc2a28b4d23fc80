package admin

import (
	"net/http"
	"time"
)

// Certificate is one name the TLS listener serves a certificate for, as
// /api/certificates shows it.
type Certificate struct {
	Domain string `json:"domain"`
	// Issuer is the common name of the certificate's issuer; empty
	// while none has been obtained.
	Issuer string `json:"issuer"`
	// NotAfter is when the certificate expires; nil while there is
	// none.
	NotAfter *time.Time `json:"not_after"`
	// Source is where it comes from: "file", "acme" or "internal".
	Source string `json:"source"`
	// LastError is why the last attempt to obtain or renew it failed,
	// with the CA's problem detail; empty after a success.
	LastError string `json:"last_error,omitempty"`
}

// certificates answers GET /api/certificates.
func (a *api) certificates(w http.ResponseWriter, _ *http.Request) {
	var certs []Certificate
	if a.opts.Certificates != nil {
		certs = a.opts.Certificates()
	}
	writeJSON(w, map[string]any{"certificates": nonNil(certs)})
}
