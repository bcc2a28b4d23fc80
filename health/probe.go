package health

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tbsphathuynh/proxy/internal/localfault"
	"github.com/tbsphathuynh/proxy/upstream"
)

// probe sends one check to target and says what it got.
func (c *Checker) probe(ctx context.Context, target string) upstream.Check {
	start := time.Now()
	var ok bool
	var result string
	var err error
	if c.cfg.Probe != nil {
		ok, result = c.custom(ctx, target)
	} else {
		ok, result, err = c.get(ctx, target)
	}
	return upstream.Check{At: start, OK: ok, Result: result, Latency: time.Since(start), Local: localfault.Reason(err)}
}

func (c *Checker) custom(ctx context.Context, target string) (ok bool, result string) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	ok, result = c.cfg.Probe(ctx, target)
	if !ok && ctx.Err() != nil {
		result = "timeout after " + c.cfg.Timeout.String()
	}
	return ok, result
}

// get sends the check; err is the error that failed it, if any, so that a
// failure of the proxy's own resources can be told apart.
func (c *Checker) get(ctx context.Context, target string) (ok bool, result string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false, err.Error(), err
	}
	if c.cfg.Host != "" {
		req.Host = c.cfg.Host
	}
	req.Header.Set("User-Agent", "proxy-health-check")
	// The transport, not an http.Client, so redirects are judged rather
	// than followed.
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return false, describe(err, c.cfg.Timeout), err
	}
	defer resp.Body.Close()
	status := "status " + strconv.Itoa(resp.StatusCode)
	if !c.cfg.ExpectedStatus.Contains(resp.StatusCode) {
		return false, status, nil
	}
	if c.cfg.ExpectedBody == "" {
		return true, status, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return false, status + ", reading body: " + describe(err, c.cfg.Timeout), err
	}
	if !bytes.Contains(body, []byte(c.cfg.ExpectedBody)) {
		return false, status + ", body lacks " + strconv.Quote(c.cfg.ExpectedBody), nil
	}
	return true, status, nil
}

// describe turns a probe error into what an operator wants in the log:
// "connect: connection refused", "timeout after 2s", not a Go error chain
// with the URL repeated.
func describe(err error, timeout time.Duration) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout after " + timeout.String()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// op.Err is e.g. os.SyscallError "connect: connection refused" or a
		// DNS error "lookup host: no such host".
		return op.Err.Error()
	}
	return err.Error()
}
