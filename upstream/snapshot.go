package upstream

import "time"

// ServerSnapshot is a read-only copy of one server's configuration and
// state at an instant, for the admin API and metrics.
type ServerSnapshot struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Weight   int    `json:"weight"`
	Backup   bool   `json:"backup"`
	MaxConns int64  `json:"max_connections,omitzero"`
	// Source is who put the server in the pool: config, dns or api.
	Source string `json:"source,omitempty"`

	// Healthy is the active checks' verdict.
	Healthy bool `json:"healthy"`
	// Usable reports whether the server may take new requests: healthy,
	// not ejected, not drained.
	Usable bool `json:"usable"`
	// Reason and Since describe the latest transition that explains the
	// current state: a drain, an ejection, or the last health change.
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`

	InFlight int64  `json:"in_flight"`
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// LatencyEWMA is the response-time average as of its last sample.
	LatencyEWMA time.Duration `json:"latency_ewma"`
	// Ramp is the share of its weight the server gets under slow start,
	// 1 when not ramping.
	Ramp float64 `json:"ramp"`

	Ejections    uint64    `json:"ejections"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	Drained      bool      `json:"drained"`

	// Circuit is the circuit breaker's state: closed, open or half_open;
	// CircuitReason and CircuitSince say why and since when.
	Circuit       string    `json:"circuit"`
	CircuitReason string    `json:"circuit_reason,omitempty"`
	CircuitSince  time.Time `json:"circuit_since,omitzero"`

	// LastCheck is the last active health check; zero when none ran.
	LastCheck Check `json:"last_check,omitzero"`
}

// Snapshot copies the state of every server of the pool, in config order.
// It allocates and is meant for the admin API and metrics scrapes, not the
// request path.
func (p *Pool) Snapshot(now time.Time) []ServerSnapshot {
	out := make([]ServerSnapshot, len(p.Servers))
	for i, s := range p.Servers {
		out[i] = s.snapshot(now)
	}
	return out
}

func (s *Server) snapshot(now time.Time) ServerSnapshot {
	st := s.Status()
	snap := ServerSnapshot{
		Name:        s.Name,
		Weight:      s.Weight,
		Backup:      s.Backup,
		MaxConns:    s.MaxConns,
		Source:      s.Source,
		Healthy:     st.Healthy,
		Usable:      s.Usable(now),
		Reason:      st.Reason,
		Since:       st.Since,
		InFlight:    s.InFlight(),
		Requests:    s.Requests(),
		Failures:    s.Failures(),
		LatencyEWMA: s.Latency(),
		Ramp:        s.Ramp(now),
		Ejections:   s.Ejections(),
		Drained:     s.Drained(),
	}
	if s.URL != nil {
		snap.URL = s.URL.String()
	}
	if s.Ejected(now) {
		snap.EjectedUntil = s.EjectedUntil()
		if e := s.ejectStatus.Load(); e != nil {
			snap.Reason, snap.Since = e.Reason, e.Since
		}
	}
	if snap.Drained {
		snap.Reason = "drained"
	}
	snap.Circuit = s.Circuit().String()
	if cs, ok := s.CircuitStatus(); ok {
		snap.CircuitReason, snap.CircuitSince = cs.Reason, cs.Since
	}
	if s.Circuit() == CircuitOpen && !snap.Drained {
		snap.Reason, snap.Since = "circuit open: "+snap.CircuitReason, snap.CircuitSince
	}
	snap.LastCheck, _ = s.LastCheck()
	return snap
}
