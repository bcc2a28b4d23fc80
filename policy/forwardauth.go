package policy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/middleware"
)

// authTransport is shared by every forward_auth policy, so a reload that
// builds new policies leaves no idle connections behind: they close after
// IdleConnTimeout.
var authTransport = &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConnsPerHost:   64,
	IdleConnTimeout:       30 * time.Second,
	TLSHandshakeTimeout:   5 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
}

// authBodyLimit bounds the body of an auth service's refusal that goes
// back to the client.
const authBodyLimit = 64 << 10

// forwardAuth asks the auth service about each request: a GET to its URL
// with the request's header and X-Forwarded-Method, -Uri, -Host and
// -Proto (the request's body stays with the proxy). A 2xx lets the
// request through with the fields of copy_headers set from that answer;
// any other answer (a 401 with its challenge, a 302 to a login page) goes
// back to the client as it came. An auth service that cannot be reached
// or takes longer than timeout gets the client a 503: never let through.
func forwardAuth(p *config.ForwardAuthPolicy, env Env) middleware.Middleware {
	timeout := time.Duration(p.Timeout)
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	target := p.URL
	var copyHeaders []string
	for _, h := range p.CopyHeaders {
		copyHeaders = append(copyHeaders, textproto.CanonicalMIMEHeaderKey(h))
	}
	client := &http.Client{Transport: authTransport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				env.Log.Error("forward_auth: bad url", "route", env.Route, "err", err)
				authUnavailable(w, r)
				return
			}
			copyEndToEnd(req.Header, r.Header)
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			req.Header.Set("X-Forwarded-Method", r.Method)
			req.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
			req.Header.Set("X-Forwarded-Host", r.Host)
			req.Header.Set("X-Forwarded-Proto", scheme)
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				req.Header.Set("X-Forwarded-For", host)
			}
			res, err := client.Do(req)
			if err != nil {
				if r.Context().Err() != nil {
					return // the client left
				}
				env.Log.Warn("forward_auth: the auth service did not answer", "route", env.Route, "err", err)
				authUnavailable(w, r)
				return
			}
			defer res.Body.Close()
			if res.StatusCode >= 200 && res.StatusCode < 300 {
				io.Copy(io.Discard, io.LimitReader(res.Body, authBodyLimit))
				for _, h := range copyHeaders {
					if v, ok := res.Header[h]; ok {
						r.Header[h] = v
					} else {
						// A client must not supply what the auth service
						// vouches for.
						delete(r.Header, h)
					}
				}
				next.ServeHTTP(w, r)
				return
			}
			env.Rejected()
			copyEndToEnd(w.Header(), res.Header)
			// A gRPC client gets the refusal as a status, the auth
			// service's fields (a challenge) as its metadata; a body it
			// could not read stays behind.
			if grpcwire.Refuse(w, r, res.StatusCode, "proxy: the auth service refused the call") {
				return
			}
			w.WriteHeader(res.StatusCode)
			io.Copy(w, io.LimitReader(res.Body, authBodyLimit))
		})
	}
}

// authUnavailable answers for an auth service that could not be asked:
// never let through.
func authUnavailable(w http.ResponseWriter, r *http.Request) {
	if !grpcwire.Refuse(w, r, http.StatusServiceUnavailable, "proxy: the auth service is unavailable") {
		http.Error(w, "503 Service Unavailable", http.StatusServiceUnavailable)
	}
}

// copyEndToEnd copies src's fields to dst but those about one hop or one
// message's framing, which the exchange with the auth service does not
// share with the client's.
func copyEndToEnd(dst, src http.Header) {
	for k, v := range src {
		switch k {
		case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length":
			continue
		}
		dst[k] = v
	}
}
