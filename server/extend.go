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
