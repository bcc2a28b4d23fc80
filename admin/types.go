package admin

import (
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// Upstream is one upstream as /api/upstreams shows it.
type Upstream struct {
	Name     string   `json:"name"`
	Strategy string   `json:"strategy"`
	Servers  []Server `json:"servers"`
}

// Server is one server of an upstream: its config and its live state.
// Durations are in milliseconds, with the unit in the JSON name, so a
// script or the dashboard need not guess.
type Server struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Weight int    `json:"weight"`
	Backup bool   `json:"backup"`
	// Source is who put the server in the pool: "config" (the file),
	// "dns" (discovery, which owns it: the API may not change it) or
	// "api".
	Source string `json:"source"`

	// Healthy is the active checks' verdict; Usable adds ejection and
	// drain: it says whether the server takes new requests.
	Healthy bool `json:"healthy"`
	Usable  bool `json:"usable"`
	// Reason and Since explain the current state ("status 503",
	// "ejected: 5 consecutive failures", "drained").
	Reason string    `json:"reason"`
	Since  time.Time `json:"since,omitzero"`

	InFlight      int64   `json:"in_flight"`
	Requests      uint64  `json:"requests"`
	Failures      uint64  `json:"failures"`
	LatencyEWMAms float64 `json:"latency_ewma_ms"`
	// Ramp is the share of its weight the server gets under slow start,
	// 1 when not ramping.
	Ramp float64 `json:"ramp"`

	Ejections    uint64    `json:"ejections"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	Drained      bool      `json:"drained"`
	// Circuit is the circuit breaker's state: "closed", "open" or
	// "half_open"; CircuitReason says why it last changed.
	Circuit       string `json:"circuit,omitempty"`
	CircuitReason string `json:"circuit_reason,omitempty"`

	// LastCheck is the last active health check, nil before the first.
	LastCheck *Check `json:"last_check,omitempty"`
}

// Check is the outcome of one active health check.
type Check struct {
	At        time.Time `json:"at"`
	OK        bool      `json:"ok"`
	Result    string    `json:"result"`
	LatencyMS float64   `json:"latency_ms"`
}

// Route is one route as /api/routes shows it, in match order.
type Route struct {
	Name        string     `json:"name"`
	Host        string     `json:"host,omitempty"`
	PathPrefix  string     `json:"path_prefix,omitempty"`
	Upstream    string     `json:"upstream"`
	StripPrefix bool       `json:"strip_prefix"`
	RateLimit   *RateLimit `json:"rate_limit,omitempty"`
}

// RateLimit summarises a route's rate limit.
type RateLimit struct {
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
	// Key is what requests are counted by: "ip" or "header:NAME".
	Key string `json:"key"`
	// Store is "memory" or "redis".
	Store string `json:"store"`
}

// ServerFromSnapshot converts upstream's snapshot of a server into the
// API's form.
func ServerFromSnapshot(s upstream.ServerSnapshot) Server {
	out := Server{
		Name:          s.Name,
		URL:           s.URL,
		Weight:        s.Weight,
		Backup:        s.Backup,
		Source:        s.Source,
		Healthy:       s.Healthy,
		Usable:        s.Usable,
		Reason:        s.Reason,
		Since:         s.Since,
		InFlight:      s.InFlight,
		Requests:      s.Requests,
		Failures:      s.Failures,
		LatencyEWMAms: ms(s.LatencyEWMA),
		Ramp:          s.Ramp,
		Ejections:     s.Ejections,
		EjectedUntil:  s.EjectedUntil,
		Drained:       s.Drained,
		Circuit:       s.Circuit,
		CircuitReason: s.CircuitReason,
	}
	if !s.LastCheck.At.IsZero() {
		out.LastCheck = &Check{At: s.LastCheck.At, OK: s.LastCheck.OK, Result: s.LastCheck.Result, LatencyMS: ms(s.LastCheck.Latency)}
	}
	return out
}

// ServersFromSnapshots converts a pool snapshot, keeping its order.
func ServersFromSnapshots(snaps []upstream.ServerSnapshot) []Server {
	out := make([]Server, len(snaps))
	for i, s := range snaps {
		out[i] = ServerFromSnapshot(s)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
