package config

import (
	"reflect"
	"slices"
	"sort"
	"sync"
)

// strategy is what the config and the proxy know of a load-balancing
// strategy besides its code, which the balancer package registers under
// the same name. The config package does not import the balancer package
// (it imports nothing of ours), so this table is the one list of names:
// validation reads it, the direct lane asks it (ReadsRequest), and a test
// in server checks that the balancer has a factory for each entry.
type strategy struct {
	name string
	// custom: registered by a custom build (RegisterStrategy); its use of
	// hash_key and bounded_load, and of the request, is unknown.
	custom bool
	// hashKey: it reads load_balancing.hash_key and bounded_load.
	hashKey bool
	// options is the type load_balancing.options decodes into, or nil
	// when the strategy takes none.
	options reflect.Type
}

// strategies is the table; strategiesMu guards it against RegisterStrategy
// running while a config is validated (a reload on another goroutine).
var (
	strategiesMu sync.RWMutex
	strategies   = []strategy{
		{name: "round_robin"},
		{name: "weighted_round_robin"},
		{name: "least_connections"},
		{name: "ip_hash"},
		{name: "consistent_hash", hashKey: true},
		{name: "random"},
		{name: "power_of_two"},
		{name: "least_latency"},
	}
)

// RegisterStrategy makes name a valid load_balancing.strategy. Call it
// before loading a config, typically from the init function of the package
// that implements the strategy (server.RegisterStrategy does, with the
// balancer's factory). Registering a name twice is harmless.
func RegisterStrategy(name string) {
	if name == "" {
		panic("config: RegisterStrategy with an empty name")
	}
	strategiesMu.Lock()
	defer strategiesMu.Unlock()
	if lookupStrategy(name) == nil {
		strategies = append(strategies, strategy{name: name, custom: true})
	}
}

// RegisterStrategyOptions makes name a valid strategy, as
// RegisterStrategy, that takes its own settings in load_balancing.options:
// the block decodes into a new value of settings' type (a pointer to a
// struct) with the same checks and positions as built-in keys, and a
// Validate() error method on it runs at load.
func RegisterStrategyOptions(name string, settings any) {
	t := reflect.TypeOf(settings)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic("config: RegisterStrategyOptions needs a pointer to a struct")
	}
	RegisterStrategy(name)
	strategiesMu.Lock()
	defer strategiesMu.Unlock()
	lookupStrategy(name).options = t.Elem()
}

// StrategyOptions is a strategy's own block, load_balancing.options.
type StrategyOptions struct {
	// Value points to the decoded settings, a value of the type given to
	// RegisterStrategyOptions; nil when the block is absent.
	Value any `yaml:"-"`
}

var strategyOptionsType = reflect.TypeFor[StrategyOptions]()

// strategyOptions decodes each upstream's load_balancing.options into its
// strategy's type.
func (w *walker) strategyOptions(cfg *Config) {
	for _, name := range cfg.UpstreamNames() {
		uc := cfg.UpstreamByName(name)
		o := &uc.LoadBalancing.Options
		node := w.options[o]
		if node == nil {
			continue
		}
		path := "load_balancing.options"
		if name != DefaultUpstream {
			path = "upstreams." + name + "." + path
		}
		strategy := uc.LoadBalancing.Strategy
		if strategy == "" {
			strategy = "round_robin" // the default, not applied yet
		}
		strategiesMu.RLock()
		var t reflect.Type
		if st := lookupStrategy(strategy); st != nil {
			t = st.options
		}
		strategiesMu.RUnlock()
		if t == nil {
			w.errorf(node, path, "strategy %s takes no options", quote(strategy))
			continue
		}
		v := reflect.New(t)
		w.decode(node, v.Elem(), path)
		o.Value = v.Interface()
	}
}

// KnownStrategies returns a sorted copy of the registered strategy names.
func KnownStrategies() []string {
	strategiesMu.RLock()
	defer strategiesMu.RUnlock()
	names := make([]string, 0, len(strategies))
	for _, s := range strategies {
		names = append(names, s.name)
	}
	sort.Strings(names)
	return names
}

// BuiltinStrategies returns the names of the strategies that ship with the
// proxy, sorted.
func BuiltinStrategies() []string {
	strategiesMu.RLock()
	defer strategiesMu.RUnlock()
	var names []string
	for _, s := range strategies {
		if !s.custom {
			names = append(names, s.name)
		}
	}
	sort.Strings(names)
	return names
}

// lookupStrategy finds name in the table; the caller holds strategiesMu.
func lookupStrategy(name string) *strategy {
	i := slices.IndexFunc(strategies, func(s strategy) bool { return s.name == name })
	if i < 0 {
		return nil
	}
	return &strategies[i]
}

// strategyTraits returns what the table says of name: whether it is known,
// custom, and a reader of hash_key.
func strategyTraits(name string) (known, custom, hashKey bool) {
	strategiesMu.RLock()
	defer strategiesMu.RUnlock()
	s := lookupStrategy(name)
	if s == nil {
		return false, false, false
	}
	return true, s.custom, s.hashKey
}

// ReadsRequest reports whether the strategy may read more of a request
// than the client's address to pick a server: a hash of a header, cookie
// or URI, or a custom strategy, which may read anything. The direct lane,
// which never builds the request's header, serves only upstreams whose
// strategy does not.
func (lb LoadBalancing) ReadsRequest() bool {
	known, custom, hashKey := strategyTraits(lb.Strategy)
	if lb.Strategy == "" {
		return false // the default, round_robin
	}
	if !known || custom {
		return true
	}
	return hashKey && lb.HashKey != "" && lb.HashKey != "ip"
}
