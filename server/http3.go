package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// altSvcMaxAge is how long, in seconds, a client may remember that HTTP/3
// is offered: the default of RFC 7838 §3.1 (24 hours), written out.
const altSvcMaxAge = 86400

// h3Listener serves HTTP/3 (QUIC) on the UDP port of the main TLS
// listener, through the same handler as h1 and h2.
type h3Listener struct {
	// addr is the UDP address it was opened on, which identifies it
	// across reloads: a reload that keeps it keeps the listener, so QUIC
	// connections, which cannot move to another socket, go on.
	addr string
	pc   net.PacketConn
	srv  *http3.Server
	// altSvc is the Alt-Svc value advertising it, one element with no
	// spare capacity, so a header that appends to it copies it.
	altSvc []string
	// stopping is closed when the listener starts to stop, so a test can
	// tell a request finished because the stop waited for it.
	stopping chan struct{}
	stopOnce sync.Once
}

// http3Addr is the UDP address HTTP/3 listens on for cfg, beside the main
// listener now at mainAddr (its port may have been chosen by the system),
// or "" when http3 is off.
func http3Addr(cfg *config.Config, mainAddr string) string {
	if !cfg.HTTP3 || cfg.TLS == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return ""
	}
	_, port, err := net.SplitHostPort(mainAddr)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(host, port)
}

// openHTTP3 opens the HTTP/3 listener for cfg beside the main listener at
// mainAddr, or returns nil when http3 is off.
func (s *Server) openHTTP3(cfg *config.Config, mainAddr string) (*h3Listener, error) {
	addr := http3Addr(cfg, mainAddr)
	if addr == "" {
		return nil, nil
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, listenError("http3", addr, cfg.Where("http3"), err)
	}
	srv := &http3.Server{
		Handler: s,
		// The certificate, client certificate checks and minimum version
		// are those of the TCP listener at each handshake, so renewed
		// files and reloads reach HTTP/3 too; http3 narrows the ALPN
		// offer to h3 in a copy, and QUIC itself requires TLS 1.3.
		TLSConfig: &tls.Config{
			GetCertificate:     s.certificate,
			GetConfigForClient: s.handshakeConfig,
			MinVersion:         tls.VersionTLS13,
		},
		// No 0-RTT: early data can be replayed by anyone on the path
		// (RFC 8446 §8, RFC 9001 §9.2), and a proxy cannot tell which of
		// the requests it forwards a replay would harm.
		QUICConfig:     &quic.Config{Allow0RTT: false},
		MaxHeaderBytes: int(cfg.Client.MaxHeaderBytes),
		IdleTimeout:    cfg.Client.IdleTimeout.D(),
		Logger:         s.log,
		ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
			return reqinfo.WithSlot(ctx)
		},
	}
	_, port, _ := net.SplitHostPort(addr)
	alt := `h3=":` + port + `"; ma=` + strconv.Itoa(altSvcMaxAge)
	return &h3Listener{addr: addr, pc: pc, srv: srv, altSvc: []string{alt}, stopping: make(chan struct{})}, nil
}

// addrOf is l's address, "" for no listener.
func (l *h3Listener) addrOf() string {
	if l == nil {
		return ""
	}
	return l.addr
}

// serveHTTP3 serves l in the background, owned by s.wg.
func (s *Server) serveHTTP3(l *h3Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := l.srv.Serve(l.pc)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("serve", "addr", l.addr, "proto", "HTTP/3", "err", err)
		}
	}()
}

// stopHTTP3 stops l as Shutdown stops the TCP listener: no new QUIC
// connection or request is taken (a GOAWAY tells clients, RFC 9114 §5.2),
// requests in flight run to their end until ctx ends, then what is left is
// closed. http3 leaves the socket open, as it did not open it.
func stopHTTP3(ctx context.Context, l *h3Listener) error {
	// Shutdown may be called again, as the server's Shutdown may.
	l.stopOnce.Do(func() { close(l.stopping) })
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	l.pc.Close()
	return err
}

// retireHTTP3 stops a replaced HTTP/3 listener in the background, letting
// its requests finish within timeout.
func (s *Server) retireHTTP3(l *h3Listener, timeout time.Duration) {
	if l == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = stopHTTP3(ctx, l)
	}()
}

// setAltSvc makes the answers over TLS advertise l, or nothing without it.
func (s *Server) setAltSvc(l *h3Listener) {
	if l == nil {
		s.altSvc.Store(nil)
		return
	}
	s.altSvc.Store(&l.altSvc)
}

// advertiseHTTP3 adds Alt-Svc to an answer over h1 or h2 with TLS, so a
// client learns it may come back over HTTP/3 (RFC 9114 §3.1.1). An answer
// over HTTP/3 needs none: the client is there already.
func (s *Server) advertiseHTTP3(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || r.ProtoMajor == 3 {
		return
	}
	if v := s.altSvc.Load(); v != nil {
		w.Header()["Alt-Svc"] = *v
	}
}
