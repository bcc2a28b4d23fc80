// Package server compiles a config into a running proxy: listeners, the
// runtime of routes and upstreams, atomic swaps on reload, draining on
// shutdown. It is the only package that knows all the others.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/edgecert"
	"github.com/tbsphathuynh/proxy/internal/forward"
	"github.com/tbsphathuynh/proxy/internal/localfault"
	"github.com/tbsphathuynh/proxy/internal/sdnotify"
	"github.com/tbsphathuynh/proxy/metrics"
	"github.com/tbsphathuynh/proxy/ratelimit"
	"github.com/tbsphathuynh/proxy/tracing"
	"github.com/tbsphathuynh/proxy/upstream"
)

// Options are the parts of a server that do not come from the config file.
type Options struct {
	// Version and Commit label proxy_build_info.
	Version, Commit string
	// ConfigPath is re-read on reload; empty means the config was built from
	// the command line and cannot be reloaded.
	ConfigPath string
	// Logger receives the process log; nil builds one from the config.
	Logger *slog.Logger
	// LogLevel, when set, is adjusted to logging.level on every reload.
	LogLevel *slog.LevelVar
	// Overrides are command-line settings that take precedence over the
	// file, on every reload as at start.
	Overrides []config.Override
	// Notify receives the service states of sd_notify(3) (READY=1 once the
	// listeners accept, RELOADING=1 and READY=1 around a reload, STOPPING=1
	// when draining starts). Nil means systemd's $NOTIFY_SOCKET, when the
	// process has one.
	Notify func(state string)
	// ModifyResponse, if set, sees every server's answer before any of it
	// is relayed, on every route, and may change it; an error drops the
	// answer and the client gets 502 (or ErrorHandler's answer), as with
	// httputil.ReverseProxy's hook of that name.
	ModifyResponse func(*http.Response) error
	// ErrorHandler, if set, answers in place of the proxy's own 502, 503
	// or 504 (and 400, 408 or 499 for a client's broken body) on every
	// route without a fallback. status is the answer the proxy would have
	// given; err says why, for logs: never send its text to a client.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, status int, err error)
}

// Server is a running proxy.
type Server struct {
	opts   Options
	log    *slog.Logger
	states *upstream.Registry

	rt atomic.Pointer[runtime]

	// mu guards transports, files, limiters, redis, the listeners and
	// reloads, so two reloads never compile at once. The four shared
	// kinds are held by the runtimes that use them (see shared.go).
	mu         sync.Mutex
	transports *shared[transportKey, *http.Transport]
	files      *shared[string, *logFile]
	limiters   *shared[limiterKey, ratelimit.Limiter]
	redis      *shared[redisKey, redis.UniversalClient]

	registry    *prometheus.Registry
	metrics     *metrics.Metrics
	protoErrors protocolErrors

	// trace is the current tracer and traceCfg its settings; oldTraces
	// are tracers a reload replaced, to stop once the swap is done. All
	// guarded by mu.
	trace     *tracing.Tracer
	traceCfg  config.Tracing
	oldTraces []*tracing.Tracer

	// base is the config as loaded, before discovery adds its servers;
	// watches is the DNS discovery of each upstream that has one. Both
	// guarded by mu. discWG waits for the watches' goroutines.
	base    *config.Config
	watches map[string]*watch
	discWG  sync.WaitGroup
	// watchView is watches for readers that do not take mu (/readyz).
	watchView atomic.Pointer[map[string]*watch]
	// edits are the admin API's changes to the servers of each upstream
	// (see servers.go); guarded by mu.
	edits map[string]*edits

	// main, admin and redirect are guarded by mu; nil until Start
	// (redirect stays nil without http_redirect).
	main, admin *listener
	redirect    *listener
	// h3 is the HTTP/3 listener, nil without http3; guarded by mu.
	h3 *h3Listener
	// altSvc is the Alt-Svc value of the moment advertising h3, nil
	// without it (see advertiseHTTP3).
	altSvc atomic.Pointer[[]string]
	// reserve is the spare descriptors the listeners give back when the
	// process runs out (see acceptGuard); opened by Start.
	reserve *localfault.Reserve
	cert    atomic.Pointer[listenerTLS]
	// pendingCert is the certificate manager a reload is obtaining
	// certificates with, answering its challenges beside the current one.
	pendingCert atomic.Pointer[edgecert.Manager]
	// certTuning carries renewal timings into the managers (tests).
	certTuning edgecert.Options
	draining   atomic.Bool
	// stopping is closed when Shutdown starts, ending the waits of
	// retired listeners.
	stopping chan struct{}
	wg       sync.WaitGroup
}

// New compiles cfg into a server that is ready to Start.
func New(cfg *config.Config, opts Options) (*Server, error) {
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		states:     upstream.NewRegistry(),
		transports: newShared[transportKey](forward.CloseIdleConnections),
		files:      newShared[string](func(f *logFile) { f.Close() }),
		limiters:   newShared[limiterKey](func(ratelimit.Limiter) {}),
		redis:      newShared[redisKey](func(c redis.UniversalClient) { c.Close() }),
		stopping:   make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s.protoErrors.s = s
	s.registry = metrics.NewRegistry()
	s.metrics = metrics.New(s.registry)
	s.metrics.SetBuildInfo(opts.Version, opts.Commit, goruntime.Version())
	s.metrics.SetServerSource(s.serverStats)
	s.registry.MustRegister(metrics.NewCertificateCollector(s.certificateStats, nil))
	s.base = cfg
	s.setWatches(s.newWatches(cfg, nil))
	rt, err := s.compile(s.effective(cfg, s.watches))
	if err != nil {
		stopWatches(s.watches, nil)
		return nil, err
	}
	s.rt.Store(rt)
	s.logWarnings(cfg)
	return s, nil
}

// logWarnings logs what validation found worth saying about cfg, as
// -validate prints it, so an operator who never ran -validate sees it too.
func (s *Server) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		s.log.Warn("config warning", "warning", w.Error())
	}
}

// ServeHTTP serves r with the current runtime.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := s.enter()
	defer s.leave(rt)
	if rt.hsts != "" && r.TLS != nil {
		// Set before the server's headers are copied after it, so ours
		// comes first, the one browsers heed (RFC 6797 §8.1).
		w.Header().Set("Strict-Transport-Security", rt.hsts)
	}
	s.advertiseHTTP3(w, r)
	s.metrics.ClientRequest(r.ProtoMajor)
	rt.handler.ServeHTTP(w, r)
}

// Start opens the listeners and serves in the background. With tls.acme
// it returns once the certificates are obtained (or loaded from storage).
func (s *Server) Start() error {
	err := s.start()
	if err != nil {
		// A certificate manager may have started its renewals.
		s.stopCertificates()
	}
	return err
}

func (s *Server) start() error {
	rt := s.rt.Load()
	cert, err := s.loadCertificate(rt.cfg)
	if err != nil {
		return err
	}
	s.cert.Store(cert)
	s.reserve = localfault.NewReserve(localfault.ReserveSize())
	main, err := s.openMain(rt.cfg, nil)
	if err != nil {
		s.reserve.Release()
		return err
	}
	admin, err := s.openAdmin(rt.cfg)
	if err != nil {
		main.sock.Close()
		s.reserve.Release()
		return err
	}
	redirect, err := s.openRedirect(rt.cfg)
	if err != nil {
		main.sock.Close()
		s.reserve.Release()
		if admin != nil {
			admin.ln.Close()
		}
		return err
	}
	h3, err := s.openHTTP3(rt.cfg, main.ln.Addr().String())
	if err != nil {
		main.sock.Close()
		s.reserve.Release()
		if admin != nil {
			admin.ln.Close()
		}
		if redirect != nil {
			redirect.ln.Close()
		}
		return err
	}
	challengeAddrs(cert, main, redirect)
	s.mu.Lock()
	s.main, s.admin, s.redirect, s.h3 = main, admin, redirect, h3
	s.startWatches()
	s.mu.Unlock()
	if admin != nil {
		s.serve(admin)
	}
	if redirect != nil {
		s.serve(redirect)
	}
	rt.start()
	if h3 != nil {
		s.serveHTTP3(h3)
		s.setAltSvc(h3)
	}
	s.serve(main)
	if err := s.obtainCertificates(cert); err != nil {
		_ = s.Shutdown(context.Background())
		return err
	}
	s.log.Info("proxy listening", "addr", s.Addr(), "tls", rt.cfg.TLS != nil, "http3", h3.addrOf(), "admin", s.AdminAddr())
	return nil
}

// Addr is the main listener's address, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.main == nil {
		return ""
	}
	return s.main.ln.Addr().String()
}

// AdminAddr is the admin listener's address, or "" when it is off.
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		return ""
	}
	return s.admin.ln.Addr().String()
}

// Reload re-reads the config file and swaps in the new runtime. On any
// error the current config keeps serving.
func (s *Server) Reload() error {
	if s.opts.Notify != nil {
		s.opts.Notify(sdnotify.Reloading)
		// Whether or not the new file is taken, a config is serving.
		defer s.opts.Notify(sdnotify.Ready)
	}
	if s.opts.ConfigPath == "" {
		return errors.New("no config file to reload: the proxy was started from the command line")
	}
	cfg, err := config.LoadWith(s.opts.ConfigPath, s.opts.Overrides...)
	if err != nil {
		s.metrics.Reload(false)
		s.log.Error("reload failed; keeping the current config", "file", s.opts.ConfigPath, "err", err)
		return err
	}
	return s.Apply(cfg)
}

// Apply swaps in a runtime compiled from cfg. Requests in flight finish on
// the runtime they started on; servers present in both configs keep their
// state and pooled connections. A listener whose settings changed is
// replaced: the new one opens before the old one stops accepting.
func (s *Server) Apply(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	watches := s.newWatches(cfg, s.watches)
	edits := s.edits
	s.edits = keptEdits(cfg, edits)
	if err := s.apply(s.effective(cfg, watches)); err != nil {
		s.edits = edits
		stopWatches(watches, s.watches)
		s.metrics.Reload(false)
		s.log.Error("reload failed; keeping the current config", "file", s.opts.ConfigPath, "err", err)
		return err
	}
	stopWatches(s.watches, watches)
	s.base = cfg
	s.setWatches(watches)
	if s.main != nil {
		s.startWatches()
	}
	s.metrics.Reload(true)
	s.log.Info("config reloaded", "file", s.opts.ConfigPath)
	s.logWarnings(cfg)
	return nil
}

func (s *Server) apply(cfg *config.Config) (err error) {
	old := s.rt.Load()
	prevCert := s.cert.Load()
	cert, err := s.loadCertificate(cfg)
	if err != nil {
		return err
	}
	defer func() { s.settleCertificates(prevCert, cert, err) }()
	rt, err := s.compile(cfg)
	if err != nil {
		s.dropNewTracer()
		return err
	}
	started := s.main != nil
	var main, admin *listener
	if started && mainKey(cfg) != s.main.key {
		var sock *handoff
		if cfg.Listen == s.main.key.addr {
			sock = s.main.sock
		}
		if main, err = s.openMain(cfg, sock); err != nil {
			rt.discard()
			s.dropNewTracer()
			return err
		}
	}
	adminMoved := started && adminKey(cfg) != s.admin.keyOf()
	if adminMoved {
		if admin, err = s.openAdmin(cfg); err != nil {
			rt.discard()
			s.dropNewTracer()
			if main != nil && main.sock != s.main.sock {
				main.sock.Close()
			}
			return err
		}
	}
	redirectMoved := started && redirectKey(cfg) != s.redirect.keyOf()
	var redirect *listener
	if redirectMoved {
		if redirect, err = s.openRedirect(cfg); err != nil {
			rt.discard()
			s.dropNewTracer()
			if main != nil && main.sock != s.main.sock {
				main.sock.Close()
			}
			if admin != nil {
				admin.ln.Close()
			}
			return err
		}
	}
	var h3 *h3Listener
	h3Moved := false
	if started {
		mainAddr := s.main.ln.Addr().String()
		if main != nil {
			mainAddr = main.ln.Addr().String()
		}
		h3Moved = http3Addr(cfg, mainAddr) != s.h3.addrOf()
		if h3Moved {
			h3, err = s.openHTTP3(cfg, mainAddr)
		}
	}
	if err != nil {
		rt.discard()
		s.dropNewTracer()
		if main != nil && main.sock != s.main.sock {
			main.sock.Close()
		}
		if admin != nil {
			admin.ln.Close()
		}
		if redirect != nil {
			redirect.ln.Close()
		}
		return err
	}

	// Nothing can fail from here on.
	s.cert.Store(cert)
	if started {
		rt.start()
	}
	s.rt.Store(rt)
	old.close()
	s.retireRuntime(old)
	s.states.Retain(rt.keys())
	s.flushTracers(s.oldTraces, cfg.ShutdownTimeout.D())
	s.oldTraces = nil
	if s.opts.LogLevel != nil {
		s.opts.LogLevel.Set(parseLevel(cfg.Logging.Level))
	}
	if main != nil {
		s.serve(main)
		s.retire(s.main, main, cfg.ShutdownTimeout.D())
		s.main = main
		s.log.Info("main listener replaced", "addr", main.ln.Addr().String())
	}
	if adminMoved {
		if admin != nil {
			s.serve(admin)
		}
		s.retire(s.admin, nil, time.Second)
		s.admin = admin
	}
	if redirectMoved {
		if redirect != nil {
			s.serve(redirect)
		}
		s.retire(s.redirect, nil, time.Second)
		s.redirect = redirect
	}
	if h3Moved {
		// The new one serves before the old one stops taking requests;
		// the old one's requests finish as those of a replaced main
		// listener do.
		if h3 != nil {
			s.serveHTTP3(h3)
		}
		s.setAltSvc(h3)
		s.retireHTTP3(s.h3, cfg.ShutdownTimeout.D())
		s.h3 = h3
	}
	return nil
}

// keyOf is l's key, the zero key for no listener.
func (l *listener) keyOf() listenKey {
	if l == nil {
		return listenKey{}
	}
	return l.key
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends, then closes what is left. /readyz answers 503 from the
// first moment, so a load balancer in front stops sending here.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.Swap(true) {
		close(s.stopping)
	}
	s.mu.Lock()
	main, admin, redirect, h3 := s.main, s.admin, s.redirect, s.h3
	// No set found from now on may swap a runtime in.
	stopWatches(s.watches, nil)
	s.mu.Unlock()
	s.discWG.Wait()
	var err error
	// HTTP/3 drains beside the TCP listener, within the same ctx.
	h3done := make(chan error, 1)
	if h3 != nil {
		go func() { h3done <- stopHTTP3(ctx, h3) }()
	} else {
		h3done <- nil
	}
	if main != nil {
		// Close the socket first, so new connections are refused at once
		// rather than queued while requests drain.
		main.sock.Close()
		if err = main.srv.Shutdown(ctx); err != nil {
			main.srv.Close()
		}
	}
	if h3err := <-h3done; err == nil {
		err = h3err
	}
	if admin != nil {
		admin.srv.Close()
	}
	if redirect != nil {
		redirect.srv.Close()
	}
	s.wg.Wait()
	s.stopCertificates()
	s.reserve.Release() // no listener is left to refill it
	s.rt.Load().close()
	s.states.Close()
	s.mu.Lock()
	s.transports.closeAll()
	s.files.closeAll()
	s.limiters.closeAll()
	s.redis.closeAll()
	tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.trace.Shutdown(tctx)
	s.mu.Unlock()
	return err
}

// dropNewTracer undoes what a failed compile did to the tracers: the one it
// built is stopped and the one in use stays.
func (s *Server) dropNewTracer() {
	if len(s.oldTraces) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.trace.Shutdown(ctx)
	s.trace = s.oldTraces[len(s.oldTraces)-1]
	s.oldTraces = s.oldTraces[:len(s.oldTraces)-1]
	s.traceCfg = s.rt.Load().cfg.Tracing
}

// Run starts the server, reloads on SIGHUP and drains when ctx ends,
// waiting at most the config's shutdown_timeout.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	// Catch the signals before listening: a SIGHUP or SIGUSR1 that came
	// between the two would otherwise end the process, their default.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr1 := make(chan os.Signal, 1)
	if len(reopenSignals) > 0 {
		signal.Notify(usr1, reopenSignals...)
		defer signal.Stop(usr1)
	}

	s, err := New(cfg, opts)
	if err != nil {
		return err
	}
	if s.opts.Notify == nil {
		s.opts.Notify = s.systemdNotify(sdnotify.FromEnv(os.Getenv))
	}
	if err := s.Start(); err != nil {
		return err
	}
	s.opts.Notify(sdnotify.Ready)
	if cfg.Watch && opts.ConfigPath != "" {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if err := s.watch(wctx, opts.ConfigPath); err != nil {
			s.log.Warn("cannot watch the config file; reload with SIGHUP instead", "err", err)
		}
	}
	for {
		select {
		case <-hup:
			_ = s.Reload()
		case <-usr1:
			s.ReopenLogs()
		case <-ctx.Done():
			s.opts.Notify(sdnotify.Stopping)
			timeout := s.rt.Load().cfg.ShutdownTimeout.D()
			s.log.Info("shutting down: draining in-flight requests", "timeout", timeout)
			sctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return s.Shutdown(sctx)
		}
	}
}

// systemdNotify sends states to n, logging a failure once: systemd that
// misses READY=1 fails the unit at its start timeout, and the log says why.
func (s *Server) systemdNotify(n *sdnotify.Notifier) func(string) {
	var warned atomic.Bool
	return func(state string) {
		if err := n.Send(state); err != nil && !warned.Swap(true) {
			s.log.Warn("cannot notify systemd", "state", state, "err", err)
		}
	}
}
