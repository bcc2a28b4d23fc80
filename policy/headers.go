package policy

import (
	"net/http"
	"net/textproto"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/middleware"
)

// edits are HeaderRules with canonical names, made once per config.
type edits struct {
	remove   []string
	set, add [][2]string
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

// headers edits the request's header before the next handler sees it, and
// the response's before its head is written: the server's answer and the
// proxy's own (502, 503, 429) alike.
func headers(p *config.HeadersPolicy) middleware.Middleware {
	req, res := compileEdits(p.Request), compileEdits(p.Response)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !req.empty() {
				req.apply(r.Header)
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
