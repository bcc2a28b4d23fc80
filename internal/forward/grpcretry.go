package forward

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
)

// A gRPC call is a POST, which the proxy never sends twice on its own. An
// operator who lists a status in RetryPolicy.OnGRPCStatus (retry_on:
// [unavailable]) says the calls of the upstream may be made twice; even
// then a call goes to another server only when that cannot show: the
// server ended it with that status before any message of its answer, and
// the client's whole stream is at hand to send again. As gRPC's own
// retries (gRFC A6), the server's grpc-retry-pushback-ms has the last word.

// callTape keeps the bytes of a gRPC call's stream as the transport reads
// them to send, rather than reading ahead, which a client that waits for
// an answer before it sends more would never let end. The stream can be
// sent again once it was read to its end within limit bytes.
type callTape struct {
	rc    io.ReadCloser
	limit int64

	// mu guards what follows: the transport reads from its own goroutine,
	// and may still be at it when the handler decides on a retry.
	mu      sync.Mutex
	buf     []byte
	whole   bool // the stream's end was read, every byte of it is in buf
	over    bool // more than limit bytes: never sent again
	stopped bool // replay was called: buf no longer changes
}

func (t *callTape) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.mu.Lock()
	if !t.stopped && !t.over {
		if int64(len(t.buf)+n) > t.limit {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
			t.whole = err == io.EOF
		}
	}
	t.mu.Unlock()
	return n, err
}

// Close leaves the client's stream open, as guardedBody does.
func (t *callTape) Close() error { return t.rc.Close() }

// ended reports whether the whole stream was read already.
func (t *callTape) ended() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.whole
}

// replay stops the recording and returns the whole stream, or false when
// it was not read to its end or was too long.
func (t *callTape) replay() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	return t.buf, t.whole
}

// retryCall reports whether the gRPC call req, which the server answered
// with resp, goes to another server, and how long to wait first: the
// server's pushback, or -1 for none (the policy's backoff then). A status
// in the trailers is looked for only when the client's stream has ended:
// the answer's head is then held until its first bytes, which, when they
// are a message, commit the call to this server (resp.Body gives them
// back). On a retry, req can be rewound.
func (p *RetryPolicy) retryCall(req *http.Request, resp *http.Response, tape *callTape) (time.Duration, bool) {
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	end := resp.Header
	if _, only := end["Grpc-Status"]; !only {
		if tape != nil && !tape.ended() || !peekEnd(resp) {
			return 0, false
		}
		end = resp.Trailer
	}
	code, ok := grpcwire.ParseStatus(end["Grpc-Status"])
	if !ok || !slices.Contains(p.OnGRPCStatus, code) {
		return 0, false
	}
	wait, ok := pushback(end)
	if !ok {
		return 0, false
	}
	if dl, ok := req.Context().Deadline(); ok && wait > 0 && time.Until(dl) <= wait {
		// The deadline would pass while waiting: the client is better
		// off with the server's answer now.
		return 0, false
	}
	if tape != nil {
		data, whole := tape.replay()
		if !whole {
			return 0, false
		}
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	return wait, true
}

// peekEnd reads the start of a gRPC answer's body and reports whether it
// ended there, its trailers read; otherwise resp.Body gives back what was
// read, followed by the rest.
func peekEnd(resp *http.Response) bool {
	head := make([]byte, 512)
	n, err := resp.Body.Read(head)
	for n == 0 && err == nil {
		n, err = resp.Body.Read(head)
	}
	if n == 0 && err == io.EOF {
		return true
	}
	// An error other than the end comes again on the next read.
	resp.Body = &joinedBody{Reader: io.MultiReader(bytes.NewReader(head[:n]), resp.Body), Closer: resp.Body}
	return false
}

// pushback reads grpc-retry-pushback-ms: -1 without one; false for a
// negative or malformed value, by which the server asks for no retry
// (gRFC A6).
func pushback(h http.Header) (time.Duration, bool) {
	v, ok := h["Grpc-Retry-Pushback-Ms"]
	if !ok {
		return -1, true
	}
	if len(v) != 1 || len(v[0]) > 10 {
		return 0, false
	}
	ms, err := strconv.ParseUint(v[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// sleep waits d unless ctx ends first.
func (u *Upstream) sleep(ctx context.Context, d time.Duration) error {
	if u.pause != nil {
		return u.pause(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
