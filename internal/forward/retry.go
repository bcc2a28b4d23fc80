package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// RetryPolicy says when a failed attempt is tried again on another server.
// The zero value never retries.
type RetryPolicy struct {
	// Attempts is how many more servers to try after the first.
	Attempts int
	// OnStatus lists response statuses that count as failures worth a retry
	// for idempotent requests.
	OnStatus []int
	// MaxBodyBytes is the largest request body kept in memory so it can be
	// sent again; larger bodies stream and are never retried once sent.
	MaxBodyBytes int64
	// PerTryTimeout bounds each attempt until response headers arrive; 0
	// leaves only the transport's response_header timeout.
	PerTryTimeout time.Duration
	// Backoff is the base of the jittered exponential wait between tries.
	Backoff time.Duration
	// Budget caps retries at a share of requests; nil means no cap.
	Budget *Budget
	// OnGRPCStatus lists gRPC statuses (such as 14, UNAVAILABLE) that
	// send a gRPC call to another server, within Attempts and Budget,
	// when its server ended it with one before any message of its answer
	// and the client's whole stream, at most MaxBodyBytes, was sent (so
	// it can be sent again), unless the server's grpc-retry-pushback-ms
	// says not to; a pushback is waited instead of Backoff. gRPC calls
	// are all POSTs: the list is the operator's word that the upstream's
	// calls may be made twice.
	OnGRPCStatus []int
}

func (p *RetryPolicy) retryStatus(code int) bool {
	for _, c := range p.OnStatus {
		if c == code {
			return true
		}
	}
	return false
}

// wait sleeps a random time in [0, Backoff×2^(try-1)), capped at a second,
// unless the client goes away first. Full jitter spreads retries of many
// clients so they do not arrive in waves.
func (p *RetryPolicy) wait(ctx context.Context, try int) error {
	if p.Backoff <= 0 {
		return ctx.Err()
	}
	d := min(p.Backoff<<min(try-1, 10), time.Second)
	t := time.NewTimer(rand.N(d) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// replayable makes a small request body readable more than once, so the
// request can be sent to another server. It reads at most MaxBodyBytes+1
// bytes: a larger body is stitched back together and streams as it came,
// and is then never retried once any of it was sent. A body that fails to
// read (the client's fault, see guardedBody) is returned as the error,
// before any server has seen the request.
func (p *RetryPolicy) replayable(req *http.Request) error {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil || p.MaxBodyBytes <= 0 {
		return nil
	}
	if req.ContentLength > p.MaxBodyBytes {
		return nil
	}
	limit := p.MaxBodyBytes + 1
	if req.ContentLength >= 0 {
		limit = req.ContentLength + 1
	}
	var buf bytes.Buffer
	_, err := io.CopyN(&buf, req.Body, limit)
	if errors.Is(err, errClientBody) {
		return err
	}
	if int64(buf.Len()) > p.MaxBodyBytes || (err != nil && !errors.Is(err, io.EOF)) {
		req.Body = &joinedBody{Reader: io.MultiReader(&buf, req.Body), Closer: req.Body}
		return nil
	}
	req.Body.Close()
	data := buf.Bytes()
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	req.Body, _ = req.GetBody()
	return nil
}

type joinedBody struct {
	io.Reader
	io.Closer
}

// retriable reports whether a failed attempt may be tried on another
// server: it never reached a server, or it is idempotent; the client is
// still waiting, its request body did not fail, and the proxy's own
// resources did not fail it.
func retriable(req *http.Request, err error) bool {
	if req.Context().Err() != nil || blameless(err) {
		// Another server would get the same broken body, or nobody
		// waiting for its answer; or the proxy itself is short of
		// descriptors or ports, which another server cannot mend and a
		// retry would only take more of.
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
