package policy

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/middleware"
)

// edits are HeaderRules with canonical names, made once per config.
type edits struct {
	remove   []string
	set, add [][2]string
	// expand says that some set or add value holds placeholders, filled
	// from the request (request edits only).
	expand bool
}

func compileEdits(r config.HeaderRules) edits {
	var e edits
	for _, name := range r.Remove {
		e.remove = append(e.remove, textproto.CanonicalMIMEHeaderKey(name))
	}
	for name, v := range r.Set {
		e.set = append(e.set, [2]string{textproto.CanonicalMIMEHeaderKey(name), v})
	}
	for name, v := range r.Add {
		e.add = append(e.add, [2]string{textproto.CanonicalMIMEHeaderKey(name), v})
	}
	return e
}

// compileRequestEdits is compileEdits for the request side, whose values
// may hold placeholders (config.HeaderTemplateFields).
func compileRequestEdits(r config.HeaderRules) edits {
	e := compileEdits(r)
	for _, kv := range append(e.set[:len(e.set):len(e.set)], e.add...) {
		e.expand = e.expand || strings.Contains(kv[1], "{")
	}
	return e
}

func (e *edits) empty() bool { return len(e.remove)+len(e.set)+len(e.add) == 0 }

func (e *edits) apply(h http.Header) {
	for _, name := range e.remove {
		delete(h, name)
	}
	for _, kv := range e.set {
		h[kv[0]] = []string{kv[1]}
	}
	for _, kv := range e.add {
		h[kv[0]] = append(h[kv[0]], kv[1])
	}
}

// applyTo applies request edits to r, filling their placeholders.
func (e *edits) applyTo(r *http.Request) {
	if !e.expand {
		e.apply(r.Header)
		return
	}
	h := r.Header
	for _, name := range e.remove {
		delete(h, name)
	}
	for _, kv := range e.set {
		h[kv[0]] = []string{expand(kv[1], r)}
	}
	for _, kv := range e.add {
		h[kv[0]] = append(h[kv[0]], expand(kv[1], r))
	}
}

// headers edits the request's header before the next handler sees it, and
// the response's before its head is written: the server's answer and the
// proxy's own (502, 503, 429) alike.
func headers(p *config.HeadersPolicy) middleware.Middleware {
	req, res := compileRequestEdits(p.Request), compileEdits(p.Response)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !req.empty() {
				req.applyTo(r)
			}
			if !res.empty() {
				w = &headerWriter{writer: writer{w}, edits: &res}
			}
			next.ServeHTTP(w, r)
		})
	}
}

type headerWriter struct {
	writer
	edits *edits
	// also, if set, edits the final head too, after edits.
	also func(http.Header)
	done bool
}

func (w *headerWriter) WriteHeader(code int) {
	// 1xx heads (103 Early Hints) are the server's; the edits are for the
	// final answer.
	if !w.done && code >= 200 {
		w.done = true
		w.edits.apply(w.Header())
		if w.also != nil {
			w.also(w.Header())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
