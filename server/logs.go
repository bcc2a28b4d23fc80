package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/accesslog"
	"github.com/tbsphathuynh/proxy/internal/forward"
	"github.com/tbsphathuynh/proxy/internal/servertls"
	"github.com/tbsphathuynh/proxy/tracing"
)

// NewLogger builds the process logger that logging.level and
// logging.format describe, writing to w. The returned LevelVar lets a
// reload change the level.
func NewLogger(l config.Logging, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(parseLevel(l.Level))
	return slog.New(newHandler(l.Format, w, lv)), lv
}

func newHandler(format string, w io.Writer, lv slog.Leveler) slog.Handler {
	o := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// accessLogger returns the logger access lines go to, or nil when the
// access log is off. A file is opened once and shared across reloads, held
// by rt until rt is released. Called with s.mu held or before the server
// starts.
func (s *Server) accessLogger(rt *runtime, l config.Logging) (*accesslog.AccessLog, error) {
	var w io.Writer
	switch l.AccessLog {
	case "off":
		return nil, nil
	case "", "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := s.files.acquire(rt, l.AccessLog, func() (*logFile, error) { return openLogFile(l.AccessLog) })
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		w = f
	}
	return accesslog.NewAccessLog(slog.New(newHandler(l.Format, w, slog.LevelInfo)), l.AccessLogFields, l.AccessLogSample)
}

// transport returns the shared transport for a set of timeouts, TLS
// settings and protocol, so
// upstreams with the same settings share keep-alive pools, and a reload
// keeps every pooled connection. rt holds it until rt is released. Called
// with s.mu held or before start.
func (s *Server) transport(rt *runtime, t config.Timeouts, st servertls.Settings, protocol string) (http.RoundTripper, error) {
	key := transportKey{forwardTimeouts(t), !rt.cfg.Client.FastPathOn(), st.Key(), protocol}
	return s.transports.acquire(rt, key, func() (*http.Transport, error) {
		tr := forward.NewTransport(key.Timeouts, forward.TransportOptions{
			NetHTTPOnly:   key.netHTTPOnly,
			ProtocolError: s.protoErrors.report,
			Protocol:      protocol,
		})
		return tr, withServerTLS(tr, st, key.Connect, protocol)
	})
}

// transportKey tells transports apart: by timeouts, by whether the
// fast path's client is on them, by the servers' TLS settings
// (servertls.Settings.Key) and by the protocol spoken to them.
type transportKey struct {
	forward.Timeouts
	netHTTPOnly bool
	tls         string
	protocol    string
}

// logFile is an access log file that can be reopened in place, so
// logrotate can move it away and signal SIGUSR1 for a fresh one.
type logFile struct {
	path string
	// mu guards f: writes and reopen never interleave.
	mu sync.Mutex
	f  *os.File
}

func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

func (l *logFile) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(b)
}

func (l *logFile) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// ReopenLogs reopens every access log file (SIGUSR1, after logrotate moved
// them away).
func (s *Server) ReopenLogs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files.each(func(path string, f *logFile) {
		if err := f.reopen(); err != nil {
			s.log.Error("reopening access log", "file", path, "err", err)
			return
		}
		s.log.Info("access log reopened", "file", path)
	})
}

// tracer returns the tracer for cfg, reusing the current one when the
// tracing settings did not change, so a reload neither drops queued spans
// nor reconnects. A replaced tracer is flushed and stopped once the new
// runtime is in (see apply). Called with s.mu held or before start.
func (s *Server) tracer(cfg config.Tracing) (*tracing.Tracer, error) {
	if s.trace != nil && s.traceCfg == cfg {
		return s.trace, nil
	}
	t, err := tracing.New(context.Background(), tracing.Config{
		Endpoint:    cfg.OTLPEndpoint,
		SampleRatio: cfg.SampleRatio,
		Version:     s.opts.Version,
		Logger:      s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if s.trace != nil {
		s.oldTraces = append(s.oldTraces, s.trace)
	}
	s.trace, s.traceCfg = t, cfg
	return t, nil
}

// flushTracers stops tracers a reload replaced, in the background, after
// the requests still using them had their time to finish.
func (s *Server) flushTracers(old []*tracing.Tracer, wait time.Duration) {
	if len(old) == 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.stopping:
			t.Stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, tr := range old {
			_ = tr.Shutdown(ctx)
		}
	}()
}

// StdLogWriter is a sink for the standard library's log package (set it
// with log.SetOutput and log.SetFlags(0)): net/http's Transport writes
// there what it notices by itself, such as "Unsolicited response received
// on idle HTTP channel". Each line becomes one WARN record of l with the
// line as its message, so that it is structured like every other line
// the proxy writes rather than a bare line on stderr.
func StdLogWriter(l *slog.Logger) io.Writer { return stdLog{l} }

type stdLog struct{ l *slog.Logger }

func (s stdLog) Write(p []byte) (int, error) {
	s.l.Warn(strings.TrimRight(string(p), "\n"), "from", "go")
	return len(p), nil
}
