package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tbsphathuynh/proxy/balancer"
	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/upstream"
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

// pinnedSettings is the options block of the test strategy "test_pinned".
type pinnedSettings struct {
	Server string `yaml:"server"`
}

func (p *pinnedSettings) Validate() error {
	if p.Server == "" {
		return errors.New("server is required")
	}
	return nil
}

// pinned sends every request to the server its options name.
type pinned struct{ name string }

func (p pinned) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	for _, s := range servers {
		if s.Name == p.name {
			return s
		}
	}
	return servers[0]
}

// A registered strategy gets its own options block, decoded and checked
// like built-in keys, and reads it when built.
func TestStrategyOptions(t *testing.T) {
	if !slices.Contains(balancer.Names(), "test_pinned") { // -count=N
		RegisterStrategyOptions("test_pinned", &pinnedSettings{}, func(o balancer.Options) (balancer.Policy, error) {
			return pinned{o.Settings.(*pinnedSettings).Server}, nil
		})
	}
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	p := startProxy(t, "servers: [{url: "+a.URL+", name: a}, {url: "+b.URL+", name: b}]\n"+
		"load_balancing: {strategy: test_pinned, options: {server: b}}\n")
	for range 5 {
		if _, _, h := get(t, &http.Client{}, "http://"+p.Addr()+"/"); h.Get("X-Backend") != "b" {
			t.Fatalf("went to %s, the options pin b", h.Get("X-Backend"))
		}
	}
	_, err := config.Parse("t.yaml", []byte("servers: [{url: 'http://127.0.0.1:1'}]\n"+
		"load_balancing: {strategy: test_pinned, options: {sever: b}}\n"+
		"upstreams:\n  x:\n    servers: [{url: 'http://127.0.0.1:1'}]\n    load_balancing: {options: {server: b}}\n"))
	for _, want := range []string{
		`t.yaml:2:51: load_balancing.options.sever: unknown key, did you mean "server"?`,
		`t.yaml:2:50: load_balancing.options: server is required`,
		`t.yaml:6:31: upstreams.x.load_balancing.options: strategy "round_robin" takes no options`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors\n%v\nlack %s", err, want)
		}
	}
}
