package server

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// Every panic recovered while serving is logged at ERROR with its stack
// and counted in proxy_panics_total, wherever it was caught: the handler
// chain's Recover and the direct lane (middleware.Recovered), the HTTP/1.1
// fast path's connections (h1.Server.OnPanic), and net/http's and
// golang.org/x/net/http2's own recover, which write to the http.Server's
// ErrorLog (see errorLog).

// fastPathPanic logs and counts a panic the fast path recovered.
func (s *Server) fastPathPanic(remoteAddr string, v any, stack []byte) {
	s.metrics.Panic()
	s.log.Error("panic serving connection", "panic", v, "client", remoteAddr, "stack", string(stack))
}

// errorLog is the http.Server's ErrorLog: net/http's messages are noise a
// client can cause at will (TLS handshake errors, bad requests), logged at
// DEBUG, except the panics it recovered, which are logged at ERROR and
// counted.
func (s *Server) errorLog() *log.Logger {
	return log.New(errorLogWriter{s}, "", 0)
}

type errorLogWriter struct{ s *Server }

// panicPrefixes start the lines net/http and its HTTP/2 server log for a
// recovered panic, its stack included.
var panicPrefixes = [][]byte{[]byte("http: panic serving "), []byte("http2: panic serving ")}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	for _, pre := range panicPrefixes {
		if bytes.HasPrefix(p, pre) {
			w.s.metrics.Panic()
			w.s.log.Error("panic serving connection", "panic", msg)
			return len(p), nil
		}
	}
	w.s.log.Log(context.Background(), slog.LevelDebug, msg)
	return len(p), nil
}
