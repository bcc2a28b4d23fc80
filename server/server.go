// Package server compiles a config into a running proxy: listeners, the
// runtime of routes and upstreams, atomic swaps on reload, draining on
// shutdown. It is the only package that knows all the others.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/forward"
	"github.com/tbsphathuynh/proxy/ratelimit"
	"github.com/tbsphathuynh/proxy/upstream"
)

// Options are the parts of a server that do not come from the config file.
type Options struct {
	// ConfigPath is re-read on reload; empty means the config was built from
	// the command line and cannot be reloaded.
	ConfigPath string
	// Logger receives the process log; nil builds one from the config.
	Logger *slog.Logger
	// LogLevel, when set, is adjusted to logging.level on every reload.
	LogLevel *slog.LevelVar
}

// Server is a running proxy.
type Server struct {
	opts   Options
	log    *slog.Logger
	states *upstream.Registry

	rt atomic.Pointer[runtime]

	// mu guards transports, files and reloads, so two reloads never
	// compile at once.
	mu         sync.Mutex
	transports map[forward.Timeouts]*http.Transport
	files      map[string]*os.File
	limiters   map[limiterKey]ratelimit.Limiter
	redis      map[config.Redis]*redis.Client

	main  *http.Server
	admin *http.Server
	ln    net.Listener
	adm   net.Listener
	wg    sync.WaitGroup
}

// New compiles cfg into a server that is ready to Start.
func New(cfg *config.Config, opts Options) (*Server, error) {
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		states:     upstream.NewRegistry(),
		transports: make(map[forward.Timeouts]*http.Transport),
		files:      make(map[string]*os.File),
		limiters:   make(map[limiterKey]ratelimit.Limiter),
		redis:      make(map[config.Redis]*redis.Client),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	rt, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	s.rt.Store(rt)
	return s, nil
}

// ServeHTTP serves r with the current runtime.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.rt.Load().handler.ServeHTTP(w, r)
}

// Start opens the listeners and serves in the background.
func (s *Server) Start() error {
	rt := s.rt.Load()
	cfg := rt.cfg
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s.main = s.newHTTPServer(cfg)
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		s.main.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2", "http/1.1"},
			MinVersion:   tls.VersionTLS12,
		}
		ln = tls.NewListener(ln, s.main.TLSConfig)
	}
	s.ln = ln
	if addr := adminAddr(cfg); addr != "" {
		adm, err := net.Listen("tcp", addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listen %s: %w", addr, err)
		}
		s.adm = adm
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		s.serve(s.admin, adm)
	}
	rt.start()
	s.serve(s.main, ln)
	s.log.Info("proxy listening", "addr", ln.Addr().String(), "tls", cfg.TLS != nil, "admin", s.AdminAddr())
	return nil
}

func (s *Server) serve(hs *http.Server, ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

func (s *Server) newHTTPServer(cfg *config.Config) *http.Server {
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
	return hs
}

// Addr is the main listener's address, once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// AdminAddr is the admin listener's address, or "" when it is off.
func (s *Server) AdminAddr() string {
	if s.adm == nil {
		return ""
	}
	return s.adm.Addr().String()
}

func adminAddr(cfg *config.Config) string {
	if cfg.Admin.Listen == nil {
		return "127.0.0.1:9901"
	}
	return *cfg.Admin.Listen
}

// Reload re-reads the config file and swaps in the new runtime. On any
// error the current config keeps serving.
func (s *Server) Reload() error {
	if s.opts.ConfigPath == "" {
		return errors.New("no config file to reload: the proxy was started from the command line")
	}
	cfg, err := config.Load(s.opts.ConfigPath)
	if err != nil {
		s.log.Error("reload failed; keeping the current config", "file", s.opts.ConfigPath, "err", err)
		return err
	}
	return s.Apply(cfg)
}

// Apply swaps in a runtime compiled from cfg. Requests in flight finish on
// the runtime they started on; servers present in both configs keep their
// state and pooled connections.
func (s *Server) Apply(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, err := s.compile(cfg)
	if err != nil {
		s.log.Error("reload failed; keeping the current config", "err", err)
		return err
	}
	rt.start()
	old := s.rt.Swap(rt)
	old.close()
	s.states.Retain(rt.keys())
	if s.opts.LogLevel != nil {
		s.opts.LogLevel.Set(parseLevel(cfg.Logging.Level))
	}
	s.log.Info("config reloaded", "file", s.opts.ConfigPath)
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	if s.main != nil {
		err = s.main.Shutdown(ctx)
		if err != nil {
			s.main.Close()
		}
	}
	if s.admin != nil {
		s.admin.Close()
	}
	s.wg.Wait()
	s.rt.Load().close()
	s.mu.Lock()
	for _, t := range s.transports {
		t.CloseIdleConnections()
	}
	for _, f := range s.files {
		f.Close()
	}
	for _, c := range s.redis {
		c.Close()
	}
	s.mu.Unlock()
	return err
}

// Run starts the server, reloads on SIGHUP and drains when ctx ends,
// waiting at most the config's shutdown_timeout.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	s, err := New(cfg, opts)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			_ = s.Reload()
		case <-ctx.Done():
			timeout := s.rt.Load().cfg.ShutdownTimeout.D()
			s.log.Info("shutting down: draining in-flight requests", "timeout", timeout)
			sctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return s.Shutdown(sctx)
		}
	}
}
