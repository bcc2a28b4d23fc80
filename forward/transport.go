package forward

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// Timeouts bound the exchange with servers.
type Timeouts struct {
	Connect        time.Duration
	ResponseHeader time.Duration
	IdleConnection time.Duration
}

// NewTransport returns a transport tuned for a reverse proxy: large
// keep-alive pools per server so connections are reused, not churned, and
// no transparent compression, so bodies pass through untouched.
func NewTransport(t Timeouts) *http.Transport {
	d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       t.IdleConnection,
		ResponseHeaderTimeout: t.ResponseHeader,
		TLSHandshakeTimeout:   t.Connect,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
}

// maxTried bounds the servers one request tries; it sizes a stack array so
// tracking them does not allocate.
const maxTried = 8

// RoundTrip sends req to a server of the pool, trying others when that is
// safe, and returns the first response obtained.
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	info := reqinfo.From(req.Context())
	var tried [maxTried]*upstream.Server
	n := 0
	path, rawPath := req.URL.Path, req.URL.RawPath
	var lastErr error
	for attempt := 0; attempt <= u.Retries && n < maxTried; attempt++ {
		s := u.pick(req, tried[:n])
		if s == nil {
			break
		}
		if attempt > 0 {
			if !rewind(req) {
				break
			}
			if info != nil {
				info.Retries++
			}
		}
		tried[n] = s
		n++
		target(req, s, path, rawPath)
		s.Acquire()
		start := time.Now()
		resp, err := u.Transport.RoundTrip(req)
		if u.Observer != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			u.Observer.Observe(s, status, err, time.Since(start))
		}
		if err == nil {
			resp.Body = track(resp.Body, s)
			if info != nil {
				info.Server = s.Name
			}
			return resp, nil
		}
		s.Release()
		if info != nil {
			info.Server = s.Name
		}
		lastErr = err
		if !retriable(req, err) {
			break
		}
	}
	if lastErr == nil {
		lastErr = ErrNoServer
	}
	return nil, lastErr
}

// pick asks the picker, then falls back to the next server that is neither
// full nor already tried, so max_connections and "each retry on another
// server" hold whatever the strategy chose.
func (u *Upstream) pick(r *http.Request, tried []*upstream.Server) *upstream.Server {
	servers := u.Pool.Available()
	if len(servers) == 0 {
		return nil
	}
	s := u.Picker.Pick(servers, r)
	if s != nil && !s.Full() && !contains(tried, s) {
		return s
	}
	off := 0
	for i, c := range servers {
		if c == s {
			off = i
			break
		}
	}
	for i := 1; i <= len(servers); i++ {
		c := servers[(off+i)%len(servers)]
		if !c.Full() && !contains(tried, c) {
			return c
		}
	}
	return nil
}

func contains(list []*upstream.Server, s *upstream.Server) bool {
	for _, c := range list {
		if c == s {
			return true
		}
	}
	return false
}

// target points req at server s, under the server's base path if it has
// one.
func target(req *http.Request, s *upstream.Server, path, rawPath string) {
	req.URL.Scheme = s.URL.Scheme
	req.URL.Host = s.URL.Host
	base := s.URL.Path
	if base == "" || base == "/" {
		req.URL.Path, req.URL.RawPath = path, rawPath
		return
	}
	req.URL.Path = joinPath(base, path)
	if rawPath != "" {
		req.URL.RawPath = joinPath(s.URL.EscapedPath(), rawPath)
	}
}

func joinPath(a, b string) string {
	switch {
	case a[len(a)-1] == '/' && b != "" && b[0] == '/':
		return a + b[1:]
	case a[len(a)-1] != '/' && (b == "" || b[0] != '/'):
		return a + "/" + b
	}
	return a + b
}

// retriable reports whether a failed attempt may be tried on another
// server: the request never reached a server, or it is idempotent; and the
// client is still waiting.
func retriable(req *http.Request, err error) bool {
	if req.Context().Err() != nil || errors.Is(err, context.Canceled) {
		return false
	}
	return isDialError(err) || idempotent(req.Method)
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// rewind makes the request body readable again for another attempt. The
// transport closes the body of a failed request, so only requests without
// a body, or whose body can be produced again, can be retried.
func rewind(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.GetBody == nil {
		return false
	}
	b, err := req.GetBody()
	if err != nil {
		return false
	}
	req.Body = b
	return true
}
