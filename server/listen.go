package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/tbsphathuynh/proxy/admin"
	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/h1"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// listener is one http.Server on one socket, with the settings it was
// opened for, so a reload can tell whether it must be replaced.
type listener struct {
	key listenKey
	hs  *http.Server
	// srv serves ln: hs itself, or for plain HTTP the fast path in front
	// of it.
	srv interface {
		Serve(net.Listener) error
		Shutdown(context.Context) error
		Close() error
	}
	ln net.Listener
	// sock is the main listener's socket, which a successor on the same
	// address shares; nil for the admin listener.
	sock *handoff
}

// listenKey is everything of the config a listener is built from. The
// certificate is not part of it: it is swapped in place (GetCertificate).
type listenKey struct {
	addr   string
	tls    bool
	h2c    bool
	client clientKey
	token  string
	pprof  bool
}

// adminKey identifies the admin listener's settings: a changed token or
// pprof switch rebuilds its handler.
func adminKey(cfg *config.Config) listenKey {
	return listenKey{addr: adminAddr(cfg), token: cfg.Admin.Token, pprof: cfg.Admin.Pprof}
}

func mainKey(cfg *config.Config) listenKey {
	c := cfg.Client
	return listenKey{addr: cfg.Listen, tls: cfg.TLS != nil, h2c: cfg.H2C, client: clientKey{
		readHeaderTimeout: c.ReadHeaderTimeout, idleTimeout: c.IdleTimeout,
		maxHeaderBytes: c.MaxHeaderBytes, fastPath: c.FastPathOn(), directLane: c.DirectLaneOn(),
	}}
}

// clientKey is what of config.Client a listener is built from; the
// allowed upgrades are the routes' business.
type clientKey struct {
	readHeaderTimeout, idleTimeout config.Duration
	maxHeaderBytes                 config.Size
	fastPath, directLane           bool
}

// openMain opens the main listener for cfg, on sock when it is given (the
// address did not change), else on a new socket.
func (s *Server) openMain(cfg *config.Config, sock *handoff) (*listener, error) {
	if sock == nil {
		raw, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, listenError("listen", cfg.Listen, cfg.Where("listen"), err)
		}
		sock = newHandoff(raw, s.acceptGuard("listen", true))
	}
	ln := sock.view()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.Client.ReadHeaderTimeout.D(),
		IdleTimeout:       cfg.Client.IdleTimeout.D(),
		MaxHeaderBytes:    int(cfg.Client.MaxHeaderBytes),
		ErrorLog:          s.errorLog(),
		// Each connection's requests keep their record in a slot of the
		// connection's context (see reqinfo.Slot).
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context { return reqinfo.WithSlot(ctx) },
	}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetHTTP2(true)
	hs.Protocols.SetUnencryptedHTTP2(cfg.H2C)
	if cfg.TLS != nil {
		hs.TLSConfig = &tls.Config{
			GetCertificate: s.certificate,
			NextProtos:     []string{"h2", "http/1.1"},
			MinVersion:     tls.VersionTLS12,
			// Client certificates and the minimum version follow the
			// config of the moment, as the certificate does.
			GetConfigForClient: s.handshakeConfig,
		}
		ln = tls.NewListener(ln, hs.TLSConfig)
		return &listener{key: mainKey(cfg), hs: hs, srv: hs, ln: ln, sock: sock}, nil
	}
	if !cfg.Client.FastPathOn() {
		return &listener{key: mainKey(cfg), hs: hs, srv: hs, ln: ln, sock: sock}, nil
	}
	fast := h1.New(hs)
	fast.Direct = lane{s}
	fast.OnPanic = s.fastPathPanic
	return &listener{key: mainKey(cfg), hs: hs, srv: fast, ln: ln, sock: sock}, nil
}

// openAdmin opens the admin listener, or returns nil when it is off.
func (s *Server) openAdmin(cfg *config.Config) (*listener, error) {
	addr := adminAddr(cfg)
	if addr == "" {
		return nil, nil
	}
	if err := admin.CheckListen(addr, cfg.Admin.Token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError("admin.listen", addr, cfg.Where("admin.listen"), err)
	}
	hs := &http.Server{Handler: s.adminHandler(cfg, addr), ReadHeaderTimeout: 10 * time.Second}
	gl := newGuardedListener(ln, s.acceptGuard("admin.listen", false))
	return &listener{key: adminKey(cfg), hs: hs, srv: hs, ln: gl}, nil
}

// acceptGuard returns the guard of a new listening socket, counting into
// the server's metrics and giving back its reserve; gated is for the main
// listener (see acceptGuard.gated).
func (s *Server) acceptGuard(name string, gated bool) *acceptGuard {
	return &acceptGuard{name: name, log: s.log, count: s.metrics.AcceptError, reserve: s.reserve, gated: gated}
}

// listenError says which setting, written where, asked for an address that
// cannot be had: "listen 127.0.0.1:8080 (config.yaml:3): address already
// in use". The system's reason alone is kept; net's own wording repeats
// the address.
func listenError(key, addr, where string, err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	return fmt.Errorf("%s %s (%s): %w", key, addr, where, err)
}

func (s *Server) serve(l *listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := l.srv.Serve(l.ln)
		// A closed socket ends Serve before Shutdown is called on it; both
		// are a normal stop.
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("serve", "addr", l.ln.Addr().String(), "err", err)
		}
	}()
}

// retire stops a replaced listener in the background. It stops accepting
// at once. When its successor serves the same socket, its keep-alive
// connections are left to end as they would have anyway (at the idle
// timeout, or when the client closes them), since closing an idle
// connection races with a request the client may be sending on it; after
// that, or when the server stops, whatever remains drains within timeout.
func (s *Server) retire(l, successor *listener, timeout time.Duration) {
	if l == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		shared := l.sock != nil && successor != nil && successor.sock == l.sock
		if shared {
			l.ln.Close()
			if idle := l.hs.IdleTimeout; idle > 0 {
				t := time.NewTimer(idle + time.Second)
				select {
				case <-t.C:
				case <-s.stopping:
					t.Stop()
				}
			}
		} else if l.sock != nil {
			l.sock.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := l.srv.Shutdown(ctx); err != nil {
			l.srv.Close()
		}
	}()
}

func adminAddr(cfg *config.Config) string {
	if cfg.Admin.Listen == nil {
		return "127.0.0.1:9901"
	}
	return *cfg.Admin.Listen
}
