package health

import (
	"context"
	"log/slog"
	"time"

	"github.com/tbsphathuynh/proxy/internal/localfault"
	"github.com/tbsphathuynh/proxy/upstream"
)

// skipLocal reports whether a probe failed for want of the proxy's own
// resources (res.Local: out of descriptors, buffers or ephemeral ports)
// and so must not be judged: it says nothing about the server, which
// keeps its state and its run of passes or failures. Blaming the server
// would take every server out at once, as a proxy short of descriptors
// fails every check (issue 18). It is logged at most once a second per
// checker, with how many probes it stands for.
func (c *Checker) skipLocal(s *upstream.Server, res upstream.Check) bool {
	if res.OK || res.Local == "" {
		return false
	}
	if ok, n := c.localLog.Allow(time.Now()); ok {
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "health check not judged: local fault",
			slog.String("upstream", c.pool.Name), slog.String("server", s.Name),
			slog.String("reason", res.Local), slog.String("cause", localfault.Describe(res.Local)),
			slog.Int("checks", n), slog.String("result", res.Result))
	}
	return true
}
