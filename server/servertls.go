package server

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/servertls"
)

// withServerTLS makes tr dial the https servers that have a tls section
// with their settings; without any, tr keeps net/http's default TLS.
func withServerTLS(tr *http.Transport, st servertls.Settings, timeout time.Duration, protocol string) error {
	if len(st) == 0 {
		return nil
	}
	// h2 is offered as ForceAttemptHTTP2 would: the transport speaks it
	// on a *tls.Conn that negotiated it; the upstream's protocol may
	// narrow the offer to one of them.
	protos := []string{"h2", "http/1.1"}
	switch protocol {
	case "h2":
		protos = protos[:1]
	case "http1":
		protos = protos[1:]
	}
	d, err := st.Build(protos, timeout)
	if err != nil {
		return err
	}
	tr.DialTLSContext = d.DialTLSContext
	return nil
}

// healthDial is the dial the health checker's own transport uses for
// https servers with a tls section, or nil. The checker's transport speaks
// HTTP/1.1 only, so that is all it offers.
func healthDial(st servertls.Settings, timeout time.Duration) (func(context.Context, string, string) (net.Conn, error), error) {
	if len(st) == 0 {
		return nil, nil
	}
	d, err := st.Build([]string{"http/1.1"}, timeout)
	if err != nil {
		return nil, err
	}
	return d.DialTLSContext, nil
}

// warnInsecure says, at every start and reload, which servers are reached
// without checking their certificate: anyone on the path could be them.
func (s *Server) warnInsecure(upstreamName string, servers []config.Server) {
	for _, sv := range servers {
		if sv.TLS != nil && sv.TLS.InsecureSkipVerify {
			s.log.Warn("server certificate not verified (insecure_skip_verify)", "upstream", upstreamName, "server", sv.Name)
		}
	}
}
