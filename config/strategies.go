package config

import (
	"slices"
	"sort"
	"sync"
)

// Strategies lists the load-balancing strategy names a config may use. The
// config package does not import the balancer package (it imports nothing
// of ours), so the names are kept here; a custom build adds its own with
// RegisterStrategy. Read it through KnownStrategies when registration may
// run concurrently.
var Strategies = []string{
	"round_robin",
	"weighted_round_robin",
	"least_connections",
	"ip_hash",
	"consistent_hash",
	"random",
	"power_of_two",
	"least_latency",
}

// strategiesMu guards Strategies against RegisterStrategy running while a
// config is validated (a reload on another goroutine).
var strategiesMu sync.RWMutex

// RegisterStrategy makes name a valid load_balancing.strategy. Call it
// before loading a config, typically from the init function of the package
// that implements the strategy. Registering a name twice is harmless.
func RegisterStrategy(name string) {
	if name == "" {
		panic("config: RegisterStrategy with an empty name")
	}
	strategiesMu.Lock()
	defer strategiesMu.Unlock()
	if !slices.Contains(Strategies, name) {
		Strategies = append(Strategies, name)
	}
}

// KnownStrategies returns a sorted copy of the registered strategy names.
func KnownStrategies() []string {
	strategiesMu.RLock()
	defer strategiesMu.RUnlock()
	names := slices.Clone(Strategies)
	sort.Strings(names)
	return names
}

// builtinStrategy reports whether name is one of the strategies that ship
// with the proxy, whose use of hash_key and bounded_load is known.
func builtinStrategy(name string) bool {
	switch name {
	case "round_robin", "weighted_round_robin", "least_connections", "ip_hash",
		"consistent_hash", "random", "power_of_two", "least_latency":
		return true
	}
	return false
}
