// Package admin serves the admin listener: Prometheus metrics, liveness
// and readiness, a JSON API over upstreams and routes, reload and drain
// controls, optional pprof, and a live dashboard embedded in the binary.
//
// The package knows nothing of the server's runtime: it reads and acts
// through the State interface the server implements, and reads metrics
// through a prometheus.Gatherer.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrNotFound is what State.SetDrained returns (possibly wrapped) for an
// upstream or server name that does not exist; the API answers 404.
var ErrNotFound = errors.New("not found")

// ErrConflict is what the server-changing State methods return (wrapped)
// when the change clashes with what is there: a server that exists
// already, or one that DNS discovery owns. The API answers 409.
var ErrConflict = errors.New("conflict")

// ErrInvalid is what they return (wrapped) for a request that cannot be
// applied as sent; the API answers 400 with the error's text, which must
// name the key at fault and nothing internal.
var ErrInvalid = errors.New("invalid")

// ServerSpec is a server added through POST /api/upstreams/{name}/servers.
type ServerSpec struct {
	URL            string `json:"url"`
	Name           string `json:"name,omitempty"`
	Weight         int    `json:"weight,omitempty"`
	Backup         bool   `json:"backup,omitempty"`
	MaxConnections int    `json:"max_connections,omitempty"`
}

// ServerPatch changes a server (PATCH .../servers/{server}); nil fields
// stay as they are.
type ServerPatch struct {
	Weight *int  `json:"weight"`
	Drain  *bool `json:"drain"`
	Backup *bool `json:"backup"`
}

// State is what the admin API needs from the running proxy. The server
// implements it over its current runtime; every method must be safe for
// concurrent use.
type State interface {
	// Upstreams lists every upstream and its servers, in config order.
	Upstreams() []Upstream
	// Routes lists the routes in match order, the catch-all last.
	Routes() []Route
	// Ready returns nil when the proxy can serve (every upstream has a
	// usable server, not shutting down), else an error whose text is the
	// short reason /readyz shows.
	Ready() error
	// Stale lists what serves from old information although the proxy
	// is ready, such as servers DNS discovery has not confirmed for
	// several refreshes; /readyz shows each line after "ready".
	Stale() []string
	// Reload reloads the config file. On error the old config keeps
	// serving; the error text is shown to the operator, so it must name
	// config problems, not internals.
	Reload() error
	// SetDrained takes a server out of rotation or puts it back. It
	// returns an error wrapping ErrNotFound for unknown names.
	SetDrained(upstream, server string, drained bool) error
	// AddServer adds a server to an upstream, ErrConflict if the upstream
	// has it already.
	AddServer(upstream string, s ServerSpec) error
	// RemoveServer drains a server and then forgets it: requests on it
	// finish, no new ones go to it. ErrConflict for a server that DNS
	// discovery owns.
	RemoveServer(upstream, server string) error
	// PatchServer changes a server's weight, drain or backup flag;
	// ErrConflict for a server that DNS discovery owns.
	PatchServer(upstream, server string, p ServerPatch) error
}

// Options configures the admin handler. Registry and State are required.
type Options struct {
	// Registry is gathered for /metrics and /api/stats.
	Registry prometheus.Gatherer
	// State is the running proxy.
	State State
	// Token, when set, must come as "Authorization: Bearer TOKEN" on every
	// POST. When the listener is not on loopback, POSTs are refused
	// without it, so an empty Token there disables them entirely.
	Token string
	// Loopback says whether the admin listener is bound to a loopback
	// address only (see IsLoopback). Only then may POSTs go without a
	// token: anyone who can reach the port is already on the machine.
	Loopback bool
	// Pprof mounts net/http/pprof under /debug/pprof/.
	Pprof bool
	// Logger receives a line per state-changing request; nil discards.
	Logger *slog.Logger
	// Now is the clock for /api/stats; nil means time.Now.
	Now func() time.Time
	// Certificates lists the TLS listener's certificates for
	// /api/certificates; nil lists none.
	Certificates func() []Certificate
}

// New returns the admin handler. It panics if Registry or State is nil,
// which is a wiring bug.
func New(opts Options) http.Handler {
	if opts.Registry == nil || opts.State == nil {
		panic("admin: Options.Registry and Options.State are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &api{opts: opts}
	mux := http.NewServeMux()

	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
		// One failing collector must not blank the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(opts.Logger.Handler(), slog.LevelError),
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /api/upstreams", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"upstreams": nonNil(opts.State.Upstreams())})
	})
	mux.HandleFunc("GET /api/routes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"routes": nonNil(opts.State.Routes())})
	})
	mux.HandleFunc("GET /api/stats", a.stats)
	mux.HandleFunc("GET /api/certificates", a.certificates)
	mux.Handle("POST /api/reload", a.auth(http.HandlerFunc(a.reload)))
	mux.Handle("POST /api/upstreams/{upstream}/servers/{server}/{action}", a.auth(http.HandlerFunc(a.drain)))
	mux.Handle("POST /api/upstreams/{upstream}/servers", a.auth(http.HandlerFunc(a.addServer)))
	mux.Handle("DELETE /api/upstreams/{upstream}/servers/{server}", a.auth(http.HandlerFunc(a.removeServer)))
	mux.Handle("PATCH /api/upstreams/{upstream}/servers/{server}", a.auth(http.HandlerFunc(a.patchServer)))

	if opts.Pprof {
		// Profiles show memory, command line and timings: they need the
		// token as the state-changing endpoints do (the same rule: a
		// configured token always, and always off loopback).
		prof := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, a.auth(h)) }
		prof("GET /debug/pprof/", pprof.Index)
		prof("GET /debug/pprof/cmdline", pprof.Cmdline)
		prof("GET /debug/pprof/profile", pprof.Profile)
		// go tool pprof looks symbols up with POST; it changes nothing.
		prof("GET /debug/pprof/symbol", pprof.Symbol)
		prof("POST /debug/pprof/symbol", pprof.Symbol)
		prof("GET /debug/pprof/trace", pprof.Trace)
	}

	ui, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	// GET / serves index.html; other paths are the page's own files.
	mux.Handle("GET /", http.FileServerFS(ui))

	// Without a token a loopback listener accepts POSTs from anything on
	// the machine, including a web page in the operator's browser posting
	// cross-site to 127.0.0.1. Cross-origin protection refuses such
	// browser requests (Sec-Fetch-Site/Origin) while curl is unaffected.
	return headers(http.NewCrossOriginProtection().Handler(mux))
}

// headers sets response headers for every admin answer: the dashboard
// loads only its own files, and nothing is cached, since all of it is live.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

type api struct {
	opts Options
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if err := a.opts.State.Ready(); err != nil {
		text(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	msg := "ready"
	for _, s := range a.opts.State.Stale() {
		msg += "\nstale: " + s
	}
	text(w, http.StatusOK, msg)
}

func (a *api) reload(w http.ResponseWriter, r *http.Request) {
	if err := a.opts.State.Reload(); err != nil {
		a.opts.Logger.Warn("admin: reload refused", "remote", r.RemoteAddr, "error", err)
		// Config errors name files, lines and keys: exactly what the
		// operator who asked needs to see.
		text(w, http.StatusBadRequest, err.Error())
		return
	}
	a.opts.Logger.Info("admin: config reloaded", "remote", r.RemoteAddr)
	text(w, http.StatusOK, "reloaded")
}

func (a *api) drain(w http.ResponseWriter, r *http.Request) {
	u, s := r.PathValue("upstream"), r.PathValue("server")
	var drained bool
	switch r.PathValue("action") {
	case "drain":
		drained = true
	case "enable":
	default:
		http.NotFound(w, r)
		return
	}
	if err := a.opts.State.SetDrained(u, s, drained); err != nil {
		if errors.Is(err, ErrNotFound) {
			text(w, http.StatusNotFound, err.Error())
			return
		}
		a.opts.Logger.Error("admin: drain", "upstream", u, "server", s, "drained", drained, "error", err)
		text(w, http.StatusInternalServerError, "could not change the server's state")
		return
	}
	a.opts.Logger.Info("admin: server drain changed", "upstream", u, "server", s, "drained", drained, "remote", r.RemoteAddr)
	writeJSON(w, map[string]any{"upstream": u, "server": s, "drained": drained})
}

// maxBody caps the JSON bodies of the server endpoints; a server's
// description is a few hundred bytes.
const maxBody = 64 << 10

func (a *api) addServer(w http.ResponseWriter, r *http.Request) {
	u := r.PathValue("upstream")
	var spec ServerSpec
	if !readJSON(w, r, &spec) {
		return
	}
	if err := a.opts.State.AddServer(u, spec); err != nil {
		a.serverError(w, r, "add", u, spec.URL, err)
		return
	}
	a.opts.Logger.Info("admin: server added", "upstream", u, "url", spec.URL, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"upstream": u, "url": spec.URL})
}

func (a *api) removeServer(w http.ResponseWriter, r *http.Request) {
	u, s := r.PathValue("upstream"), r.PathValue("server")
	if err := a.opts.State.RemoveServer(u, s); err != nil {
		a.serverError(w, r, "remove", u, s, err)
		return
	}
	a.opts.Logger.Info("admin: server removed", "upstream", u, "server", s, "remote", r.RemoteAddr)
	writeJSON(w, map[string]any{"upstream": u, "server": s, "removed": true})
}

func (a *api) patchServer(w http.ResponseWriter, r *http.Request) {
	u, s := r.PathValue("upstream"), r.PathValue("server")
	var p ServerPatch
	if !readJSON(w, r, &p) {
		return
	}
	if err := a.opts.State.PatchServer(u, s, p); err != nil {
		a.serverError(w, r, "change", u, s, err)
		return
	}
	a.opts.Logger.Info("admin: server changed", "upstream", u, "server", s, "remote", r.RemoteAddr)
	writeJSON(w, map[string]any{"upstream": u, "server": s, "changed": true})
}

// serverError answers a refused server change: 404, 409 or 400 with the
// error's text, which names names and keys only; anything else is logged
// and answered without its text.
func (a *api) serverError(w http.ResponseWriter, r *http.Request, what, u, s string, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		text(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict):
		text(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrInvalid):
		text(w, http.StatusBadRequest, err.Error())
	default:
		a.opts.Logger.Error("admin: server "+what+" failed", "upstream", u, "server", s, "remote", r.RemoteAddr, "error", err)
		text(w, http.StatusInternalServerError, "could not "+what+" the server")
	}
}

// readJSON decodes a small JSON body into v, refusing unknown keys so a
// misspelt one is not silently ignored; it answers 400 itself.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		text(w, http.StatusBadRequest, "body: want a JSON object with known keys")
		return false
	}
	return true
}

// auth guards state-changing endpoints. A token is needed when one is
// configured, and always off loopback, where an empty token therefore
// refuses every request (CheckListen stops the process from starting
// that way; this is the second lock).
func (a *api) auth(next http.Handler) http.Handler {
	need := a.opts.Token != "" || !a.opts.Loopback
	// Comparing hashes keeps the comparison constant-time in the token's
	// length too, which ConstantTimeCompare alone does not.
	want := sha256.Sum256([]byte(a.opts.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if need {
			got, ok := bearer(r.Header.Get("Authorization"))
			h := sha256.Sum256([]byte(got))
			if !ok || a.opts.Token == "" || subtle.ConstantTimeCompare(h[:], want[:]) != 1 {
				a.opts.Logger.Warn("admin: unauthorized", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				// RFC 6750 section 3: a 401 names the scheme expected.
				w.Header().Set("WWW-Authenticate", `Bearer realm="proxy admin"`)
				text(w, http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <admin token>")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bearer extracts the token of an "Authorization: Bearer T" header; the
// scheme is case-insensitive (RFC 7235 section 2.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func text(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// nonNil makes an empty list encode as [] rather than null, so clients
// can iterate without a check.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
