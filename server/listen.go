package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/tbsphathuynh/proxy/admin"
	"github.com/tbsphathuynh/proxy/config"
)

// listener is one http.Server on one socket, with the settings it was
// opened for, so a reload can tell whether it must be replaced.
type listener struct {
	key listenKey
	hs  *http.Server
	ln  net.Listener
}

// listenKey is everything of the config a listener is built from. The
// certificate is not part of it: it is swapped in place (GetCertificate).
type listenKey struct {
	addr   string
	tls    bool
	h2c    bool
	client config.Client
	token  string
	pprof  bool
}

// adminKey identifies the admin listener's settings: a changed token or
// pprof switch rebuilds its handler.
func adminKey(cfg *config.Config) listenKey {
	return listenKey{addr: adminAddr(cfg), token: cfg.Admin.Token, pprof: cfg.Admin.Pprof}
}

func mainKey(cfg *config.Config) listenKey {
	return listenKey{addr: cfg.Listen, tls: cfg.TLS != nil, h2c: cfg.H2C, client: cfg.Client}
}

// listenConfig sets SO_REUSEPORT, so that a reload which changes how the
// main listener is set up can open the new socket on the same port before
// it closes the old one, and no connection attempt is refused between.
var listenConfig = net.ListenConfig{
	Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = setReusePort(fd)
		})
		if err != nil {
			return err
		}
		return serr
	},
}

// openMain opens the main listener for cfg.
func (s *Server) openMain(cfg *config.Config) (*listener, error) {
	ln, err := listenConfig.Listen(context.Background(), "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.Client.ReadHeaderTimeout.D(),
		IdleTimeout:       cfg.Client.IdleTimeout.D(),
		MaxHeaderBytes:    int(cfg.Client.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
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
		}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	return &listener{key: mainKey(cfg), hs: hs, ln: ln}, nil
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
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	hs := &http.Server{Handler: s.adminHandler(cfg, addr), ReadHeaderTimeout: 10 * time.Second}
	return &listener{key: adminKey(cfg), hs: hs, ln: ln}, nil
}

func (s *Server) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cert.Load()
	if c == nil {
		return nil, errors.New("no certificate loaded")
	}
	return c, nil
}

// loadCertificate reads the configured certificate, to be swapped in once
// the whole reload has succeeded.
func loadCertificate(cfg *config.Config) (*tls.Certificate, error) {
	if cfg.TLS == nil {
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &c, nil
}

func (s *Server) serve(l *listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := l.hs.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "addr", l.ln.Addr().String(), "err", err)
		}
	}()
}

// retire stops a replaced listener in the background: it stops accepting
// at once and lets its connections finish their requests.
func (s *Server) retire(l *listener, timeout time.Duration) {
	if l == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := l.hs.Shutdown(ctx); err != nil {
			l.hs.Close()
		}
	}()
}

func adminAddr(cfg *config.Config) string {
	if cfg.Admin.Listen == nil {
		return "127.0.0.1:9901"
	}
	return *cfg.Admin.Listen
}
