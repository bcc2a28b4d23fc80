package balancer

import (
	"net/http"

	"github.com/tbsphathuynh/proxy/upstream"
)

// PickAvailable applies max_connections around a policy: it returns p's
// pick, or when that server is Full, the next server after it in servers
// that is not. It returns nil when every server is full (or servers is
// empty); the caller then answers 503.
//
// The check and the caller's Acquire are two steps, so a burst of
// concurrent picks can overshoot a cap by a few requests; callers that need
// a hard cap use PickAcquire.
func PickAvailable(p Policy, servers []*upstream.Server, r *http.Request) *upstream.Server {
	return pick(p, servers, r, nil, (*upstream.Server).Full)
}

// PickExcept is PickAvailable for a retry: it also passes over the servers
// in tried, so each attempt goes to a server not tried yet. tried is
// typically a slice of a small array on the caller's stack.
func PickExcept(p Policy, servers []*upstream.Server, r *http.Request, tried []*upstream.Server) *upstream.Server {
	return pick(p, servers, r, tried, (*upstream.Server).Full)
}

// PickAcquire is PickExcept that also counts the request as started on the
// returned server with upstream.Server.TryAcquire, so max_connections holds
// exactly under concurrency. The caller must Release the server when the
// request ends. It returns nil, acquiring nothing, when every untried
// server is full.
func PickAcquire(p Policy, servers []*upstream.Server, r *http.Request, tried []*upstream.Server) *upstream.Server {
	return pick(p, servers, r, tried, func(s *upstream.Server) bool { return !s.TryAcquire() })
}

// pick returns p's choice, or the first server after it for which skip is
// false; skip is called at most once per server and in order, which is
// what lets PickAcquire pass TryAcquire as skip.
func pick(p Policy, servers []*upstream.Server, r *http.Request, tried []*upstream.Server, skip func(*upstream.Server) bool) *upstream.Server {
	n := len(servers)
	if n == 0 {
		return nil
	}
	s := p.Pick(servers, r)
	at := 0
	if s != nil {
		if !contains(tried, s) && !skip(s) {
			return s
		}
		at = indexOf(servers, s)
	}
	for k := 1; k <= n; k++ {
		c := servers[(at+k)%n]
		if c == s || contains(tried, c) {
			continue
		}
		if !skip(c) {
			return c
		}
	}
	return nil
}

func indexOf(servers []*upstream.Server, s *upstream.Server) int {
	for i, c := range servers {
		if c == s {
			return i
		}
	}
	return 0
}

func contains(list []*upstream.Server, s *upstream.Server) bool {
	for _, c := range list {
		if c == s {
			return true
		}
	}
	return false
}
