package policy

import (
	"errors"
	"io"
	"net/http"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/middleware"
)

// maxBody refuses a request body over limit bytes with 413. A body whose
// length the client declared is refused before any byte of the request
// reaches a server, as nginx's client_max_body_size; a chunked one, whose
// length shows only as it comes, is cut at the limit, the attempt ends
// and the client gets 413 all the same (the forwarder's answer to a body
// it could not read, never held against the server).
func maxBody(limit int64, env Env) middleware.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > limit {
				env.Rejected()
				// The body stays unread: an HTTP/1 connection cannot
				// carry another request. HTTP/2 resets the one stream,
				// and a Connection: close would take the client's
				// other calls' connection down with it (GOAWAY).
				if r.ProtoMajor == 1 {
					w.Header().Set("Connection", "close")
				}
				if !grpcwire.Refuse(w, r, http.StatusRequestEntityTooLarge, "proxy: the request is larger than the route allows") {
					http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
				}
				return
			}
			if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
				r.Body = &countedLimit{ReadCloser: http.MaxBytesReader(w, r.Body, limit), rejected: env.Rejected}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// countedLimit counts the one rejection a cut body makes.
type countedLimit struct {
	io.ReadCloser
	rejected func()
	counted  bool
}

func (b *countedLimit) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.counted && errors.As(err, new(*http.MaxBytesError)) {
		b.counted = true
		b.rejected()
	}
	return n, err
}
