package server

import (
	"github.com/tbsphathuynh/proxy/balancer"
	"github.com/tbsphathuynh/proxy/config"
)

// RegisterStrategy adds a load-balancing strategy under name, for the
// balancer and for config validation alike, so `strategy: NAME` works in a
// config file. Call it before loading a config, typically from init in a
// custom build.
func RegisterStrategy(name string, f balancer.Factory) {
	balancer.Register(name, f)
	config.RegisterStrategy(name)
}

// RegisterStrategyOptions is RegisterStrategy for a strategy with settings
// of its own: a config's load_balancing.options block decodes into a new
// value of settings' type (a pointer to a struct), checked and positioned
// like every key (a Validate() error method on it runs at load), and f
// finds it in balancer.Options.Settings.
func RegisterStrategyOptions(name string, settings any, f balancer.Factory) {
	balancer.Register(name, f)
	config.RegisterStrategyOptions(name, settings)
}
