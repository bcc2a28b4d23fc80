// Command custompolicy is a custom build of the proxy with a policy of its
// own: "sign" adds an HMAC-SHA256 signature of the method, path and a
// timestamp to every request it forwards, so that servers can tell the
// proxy's requests from anyone else's.
//
//	go run ./examples/custompolicy -config my.yaml
//
// with, on a route:
//
//	policies:
//	  - sign: {key: ${SIGNING_KEY}, header: X-Signature}
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/policy"
	"github.com/tbsphathuynh/proxy/server"
)

// SignSettings is the sign policy's block in a config file. Its keys get
// the same checks as the proxy's own: an unknown key or a wrong type is
// reported with its file, line and column.
type SignSettings struct {
	Key    string `yaml:"key"`
	Header string `yaml:"header"` // default X-Signature
}

// Validate runs when the config is loaded; its error names the policy's
// place in the file.
func (s *SignSettings) Validate() error {
	if len(s.Key) < 16 {
		return errors.New("key must be at least 16 characters")
	}
	return nil
}

// Sign returns the signature the policy sends for a request.
func Sign(key []byte, method, path string, at time.Time) string {
	m := hmac.New(sha256.New, key)
	ts := strconv.FormatInt(at.Unix(), 10)
	fmt.Fprintf(m, "%s\n%s\n%s", method, path, ts)
	return ts + ":" + hex.EncodeToString(m.Sum(nil))
}

func init() {
	policy.Register("sign", &SignSettings{}, func(settings any, env policy.Env) (func(http.Handler) http.Handler, error) {
		s := settings.(*SignSettings)
		header := s.Header
		if header == "" {
			header = "X-Signature"
		}
		key := []byte(s.Key)
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Set(header, Sign(key, r.Method, r.URL.Path, time.Now()))
				next.ServeHTTP(w, r)
			})
		}, nil
	})
}

func main() {
	path := flag.String("config", "config.yaml", "config file")
	flag.Parse()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log, level := server.NewLogger(cfg.Logging, os.Stderr)
	if err := server.Run(ctx, cfg, server.Options{ConfigPath: *path, Logger: log, LogLevel: level}); err != nil {
		log.Error("proxy stopped", "err", err)
		os.Exit(1)
	}
}
