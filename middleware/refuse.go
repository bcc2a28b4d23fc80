package middleware

import "net/http"

// RefuseMalformed answers the requests no route can serve and net/http
// lets through, the same way whichever server read them, and closes the
// connection after, as nginx does for a request it refuses:
//   - an HTTP/1.1 request with an empty Host (RFC 9112 §3.2: the proxy
//     would otherwise send it to a server under the server's own name),
//     400;
//   - a plaintext HTTP/2 preface ("PRI * HTTP/2.0"), which reaches a
//     handler only when h2c is off (RFC 9113 §3.4), 400;
//   - CONNECT, which no route allows: the proxy is no tunnel, 405.
func RefuseMalformed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "PRI" && r.ProtoMajor == 2,
			r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.Host == "":
			refuse(w, r, http.StatusBadRequest)
		case r.Method == http.MethodConnect:
			w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE")
			refuse(w, r, http.StatusMethodNotAllowed)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func refuse(w http.ResponseWriter, r *http.Request, code int) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	http.Error(w, http.StatusText(code), code)
}
