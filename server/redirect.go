package server

import (
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tbsphathuynh/proxy/config"
)

// openRedirect opens the http_redirect listener, or returns nil when the
// config has none.
func (s *Server) openRedirect(cfg *config.Config) (*listener, error) {
	addr := cfg.HTTPRedirect
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError("http_redirect", addr, cfg.Where("http_redirect"), err)
	}
	hs := &http.Server{
		Handler:           http.HandlerFunc(s.redirectToHTTPS),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.Client.IdleTimeout.D(),
		MaxHeaderBytes:    int(cfg.Client.MaxHeaderBytes),
		ErrorLog:          s.errorLog(),
	}
	return &listener{key: redirectKey(cfg), hs: hs, srv: hs, ln: ln}, nil
}

// redirectKey identifies the redirect listener's settings; the handler
// reads the rest from the server as it is at each request.
func redirectKey(cfg *config.Config) listenKey {
	return listenKey{addr: cfg.HTTPRedirect}
}

// redirectToHTTPS answers ACME http-01 challenges, and everything else
// with 308 (RFC 9110 §15.4.9: the method and body are
// kept, unlike 301) with the same host and request target over https, on
// the TLS listener's port when it is not 443.
func (s *Server) redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	if s.answerChallenge(w, r) {
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		// HTTP/1.0 without Host: there is no name to send the client to.
		http.Error(w, "Bad Request: no Host", http.StatusBadRequest)
		return
	}
	if _, port, err := net.SplitHostPort(s.Addr()); err == nil && port != "443" {
		host = net.JoinHostPort(host, port)
	} else if err == nil {
		// A bare IPv6 address needs its brackets back.
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			host = "[" + host + "]"
		}
	}
	w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusPermanentRedirect)
}

// hstsValue is the Strict-Transport-Security value for h (RFC 6797 §6.1),
// or "" without hsts.
func hstsValue(h *config.HSTS) string {
	if h == nil {
		return ""
	}
	v := "max-age=" + strconv.FormatInt(int64(h.MaxAge.D()/time.Second), 10)
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	return v
}
