package policy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/middleware"
)

const (
	// mirrorBodyLimit is the largest body a mirrored request carries;
	// requests with longer bodies, or chunked ones, are not mirrored, so
	// that mirroring never holds a large upload back.
	mirrorBodyLimit = 64 << 10
	// mirrorInFlight bounds the copies under way per policy: a slow or
	// dead mirror upstream makes the policy skip copies, never queue them.
	mirrorInFlight = 64
	// mirrorTimeout ends a copy that takes longer, with its goroutine.
	mirrorTimeout = 10 * time.Second
	// A copy that fails (no answer: refused, reset, timed out) pauses the
	// copies for mirrorPause, doubled while the probe copy after each
	// pause fails too, up to mirrorPauseMax: a dead mirror then costs the
	// client's requests nothing, not a connection attempt each, and
	// is tried again within half a minute of coming back.
	mirrorPause    = time.Second
	mirrorPauseMax = 30 * time.Second
)

// mirrorNow is the mirror's clock; tests replace it, and mirrorDone,
// which hears of each copy's end once its result is stored.
var (
	mirrorNow  = func() int64 { return time.Now().UnixNano() }
	mirrorDone = func() {}
)

// mirror sends a copy of a share of the requests to another upstream, on a
// goroutine of its own that ends with the copy's answer or mirrorTimeout:
// the client's request goes on at once, and the copy's answer, latency
// and failures never reach it. Copies it skips (mirror full, or paused
// after a failure) are counted by env.Dropped.
func mirror(p *config.MirrorPolicy, env Env) (middleware.Middleware, error) {
	if env.Upstream == nil {
		return nil, fmt.Errorf("mirror: upstreams are not available here")
	}
	target := env.Upstream(p.Upstream)
	if target == nil {
		return nil, fmt.Errorf("mirror: no upstream named %q", p.Upstream)
	}
	percent := 100.0
	if p.Percent != nil {
		percent = *p.Percent
	}
	slots := make(chan struct{}, mirrorInFlight)
	// pausedUntil (Unix ns) and pause (ns) hold the back-off after a
	// failed copy.
	var pausedUntil, pause atomic.Int64
	var failMu sync.Mutex
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
			if percent < 100 && rand.Float64()*100 >= percent ||
				hasBody && (r.ContentLength < 0 || r.ContentLength > mirrorBodyLimit) {
				next.ServeHTTP(w, r)
				return
			}
			if mirrorNow() < pausedUntil.Load() {
				env.Dropped()
				next.ServeHTTP(w, r)
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				// The mirror is slower than the requests come: the copy
				// is dropped, counted, and never queued, so the memory
				// copies hold is bounded by mirrorInFlight bodies.
				env.Dropped()
				next.ServeHTTP(w, r)
				return
			}
			var body []byte
			if hasBody {
				b, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
				r.Body.Close()
				// The client's request goes on with what it sent, read
				// here; a body that broke breaks it there too.
				r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
				if err != nil || int64(len(b)) != r.ContentLength {
					<-slots
					next.ServeHTTP(w, r)
					return
				}
				body = b
			}
			// Nothing of the client's request context goes with the copy:
			// not its cancellation, and not its record, which is the
			// client's and recycled once the client is answered.
			ctx, cancel := context.WithTimeout(context.Background(), mirrorTimeout)
			copyReq := r.Clone(ctx)
			copyReq.RequestURI = ""
			copyReq.Body = http.NoBody
			if body != nil {
				copyReq.Body = io.NopCloser(bytes.NewReader(body))
			}
			go func() {
				defer mirrorDone()
				defer func() { <-slots }()
				defer cancel()
				defer func() {
					// A panic here would end the process: no handler
					// is there to recover it.
					if v := recover(); v != nil {
						env.Log.Error("mirror: panic sending a copy", "route", env.Route, "panic", v)
					}
				}()
				res, err := target.RoundTrip(copyReq)
				if err != nil {
					// Copies that were under way when the pause began fail
					// during it; only a failure after it (the probe's)
					// doubles it.
					failMu.Lock()
					now := mirrorNow()
					if now >= pausedUntil.Load() {
						d := min(max(2*pause.Load(), int64(mirrorPause)), int64(mirrorPauseMax))
						pause.Store(d)
						pausedUntil.Store(now + d)
					}
					failMu.Unlock()
					env.Log.Debug("mirror: the copy failed; copies paused", "route", env.Route, "upstream", p.Upstream, "err", err)
					return
				}
				pause.Store(0)
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}()
			next.ServeHTTP(w, r)
		})
	}, nil
}

// errReader returns err, or io.EOF when err is nil.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}
