package server

import (
	"slices"
	"testing"

	"github.com/tbsphathuynh/proxy/balancer"
	"github.com/tbsphathuynh/proxy/config"
)

// TestStrategyTableMatchesBalancer: the config's table of strategy names
// is the one list; every name a config accepts has code in the balancer,
// and every strategy the balancer ships is accepted by the config.
func TestStrategyTableMatchesBalancer(t *testing.T) {
	code := balancer.Names()
	for _, name := range config.BuiltinStrategies() {
		if !slices.Contains(code, name) {
			t.Errorf("config accepts strategy %q, the balancer has no code for it", name)
		}
	}
	known := config.KnownStrategies()
	for _, name := range code {
		if !slices.Contains(known, name) {
			t.Errorf("the balancer has strategy %q, a config cannot name it", name)
		}
	}
}

// TestDirectLaneStrategies: the direct lane, whose requests have no header
// or URL, serves an upstream only when its strategy picks without them.
func TestDirectLaneStrategies(t *testing.T) {
	if !slices.Contains(balancer.Names(), "test_reads_anything") { // -count=N
		RegisterStrategy("test_reads_anything", func(balancer.Options) (balancer.Policy, error) { return nil, nil })
	}
	cases := []struct {
		lb   config.LoadBalancing
		want bool
	}{
		{config.LoadBalancing{}, true},
		{config.LoadBalancing{Strategy: "round_robin"}, true},
		{config.LoadBalancing{Strategy: "least_latency"}, true},
		{config.LoadBalancing{Strategy: "ip_hash"}, true},
		{config.LoadBalancing{Strategy: "round_robin", HashKey: "header:X-User"}, true}, // ignored key
		{config.LoadBalancing{Strategy: "consistent_hash"}, true},
		{config.LoadBalancing{Strategy: "consistent_hash", HashKey: "ip"}, true},
		{config.LoadBalancing{Strategy: "consistent_hash", HashKey: "header:X-User"}, false},
		{config.LoadBalancing{Strategy: "consistent_hash", HashKey: "cookie:sid"}, false},
		{config.LoadBalancing{Strategy: "consistent_hash", HashKey: "uri"}, false},
		{config.LoadBalancing{Strategy: "test_reads_anything"}, false},
		{config.LoadBalancing{Strategy: "no_such_strategy"}, false},
	}
	for _, tc := range cases {
		if got := directBalancing(tc.lb); got != tc.want {
			t.Errorf("%+v: direct lane %v, want %v", tc.lb, got, tc.want)
		}
	}
}
