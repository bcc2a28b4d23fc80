package server

import (
	"context"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/internal/forward"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// protocolErrorLogEvery bounds the warnings about one server's framing
// errors: each is counted, but logged at most this often per server, so a
// broken server does not flood the log.
const protocolErrorLogEvery = time.Minute

// protocolErrors reports servers' breaches of HTTP framing that failed no
// request (forward.Hooks.ProtocolError): counted in
// proxy_upstream_protocol_errors_total, and logged at WARN once per
// server per protocolErrorLogEvery.
type protocolErrors struct {
	s *Server
	// mu guards last: when each upstream/server pair was last logged.
	mu   sync.Mutex
	last map[[2]string]time.Time
}

func (p *protocolErrors) report(ctx context.Context, err error) {
	up, server := "", ""
	if info := reqinfo.From(ctx); info != nil {
		up, server = info.Upstream, info.Server
	}
	if server == "" {
		// No record names the server: its address does.
		if ue, ok := err.(*forward.UnsolicitedError); ok {
			server = ue.Host
		}
	}
	p.s.metrics.ProtocolError(up, server)
	now := time.Now()
	k := [2]string{up, server}
	p.mu.Lock()
	quiet := now.Sub(p.last[k]) < protocolErrorLogEvery
	if !quiet {
		if p.last == nil {
			p.last = make(map[[2]string]time.Time)
		}
		p.last[k] = now
	}
	p.mu.Unlock()
	if !quiet {
		p.s.log.Warn("server broke HTTP framing; its connection was closed, not reused",
			"upstream", up, "server", server, "err", err)
	}
}
