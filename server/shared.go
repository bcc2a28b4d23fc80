package server

// This file keeps what runtimes share across reloads (transports, access
// log files, limiters, Redis clients) by reference: each runtime that uses
// one holds a reference, and the last runtime to let go closes it. A
// runtime lets go once a reload replaced it and the last request that
// started on it finished, so nothing a request uses is closed under it,
// and nothing the new config no longer names is kept.

// shared holds the values of one kind by key. All methods are called with
// Server.mu held, or before the server starts.
type shared[K comparable, V any] struct {
	m     map[K]*ref[V]
	close func(V)
	// done is set by closeAll; releases after it close nothing again.
	done bool
}

type ref[V any] struct {
	v V
	n int // runtimes holding it
}

func newShared[K comparable, V any](close func(V)) *shared[K, V] {
	return &shared[K, V]{m: make(map[K]*ref[V]), close: close}
}

// acquire returns the value under k, built by build the first time, and
// makes rt hold a reference to it until rt is released.
func (sh *shared[K, V]) acquire(rt *runtime, k K, build func() (V, error)) (V, error) {
	r, ok := sh.m[k]
	if !ok {
		v, err := build()
		if err != nil {
			return v, err
		}
		r = &ref[V]{v: v}
		sh.m[k] = r
	}
	r.n++
	rt.releases = append(rt.releases, func() {
		r.n--
		if r.n > 0 || sh.done {
			return
		}
		if sh.m[k] == r {
			delete(sh.m, k)
		}
		sh.close(r.v)
	})
	return r.v, nil
}

// each calls f with every value held now.
func (sh *shared[K, V]) each(f func(K, V)) {
	for k, r := range sh.m {
		f(k, r.v)
	}
}

// closeAll closes every value, at shutdown.
func (sh *shared[K, V]) closeAll() {
	sh.done = true
	for k, r := range sh.m {
		delete(sh.m, k)
		sh.close(r.v)
	}
}

// enter returns the current runtime, counted as in use by one more
// request until leave. The count is taken before the runtime is checked to
// be still current, so a reload that retires it either sees the request or
// the request sees the reload and moves to the new runtime.
func (s *Server) enter() *runtime {
	for {
		rt := s.rt.Load()
		rt.inflight.Add(1)
		if s.rt.Load() == rt {
			return rt
		}
		s.leave(rt)
	}
}

// leave ends a request's use of rt; the last request out of a retired
// runtime releases what it holds.
func (s *Server) leave(rt *runtime) {
	if rt.inflight.Add(-1) == 0 && rt.retired.Load() && !rt.released.Load() {
		s.mu.Lock()
		defer s.mu.Unlock()
		rt.release()
	}
}

// retireRuntime marks rt, which a reload just replaced, as taking no new
// requests, and releases it now if none is in flight. s.mu is held.
func (s *Server) retireRuntime(rt *runtime) {
	rt.retired.Store(true)
	if rt.inflight.Load() == 0 {
		rt.release()
	}
}

// release drops rt's references, once, closing what no other runtime
// holds, newest first so a limiter goes before the Redis client it uses.
// s.mu is held, or the server has not started.
func (rt *runtime) release() {
	if !rt.released.CompareAndSwap(false, true) {
		return
	}
	for i := len(rt.releases) - 1; i >= 0; i-- {
		rt.releases[i]()
	}
	rt.releases = nil
}

// discard undoes a runtime that was never swapped in.
func (rt *runtime) discard() {
	rt.close()
	rt.release()
}
