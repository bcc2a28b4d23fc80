package server

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/ratelimit"
)

// limiterKey identifies a limiter across reloads: the same route with the
// same limit keeps its counters, so a reload never hands every client a
// fresh burst.
type limiterKey struct {
	route string
	rate  float64
	burst int
	store string
	redis config.Redis
	onErr string
}

type limiterEntry struct {
	limiter ratelimit.Limiter
	key     ratelimit.KeyFunc
}

// limiter returns the limiter of a route, reusing the one already built for
// the same route and settings. Called with s.mu held or before start.
func (s *Server) limiter(routeName string, rl *config.RateLimit) (limiterEntry, error) {
	trusted, err := ratelimit.ParseTrustedProxies(rl.TrustedProxies)
	if err != nil {
		return limiterEntry{}, fmt.Errorf("route %s: rate_limit: %w", routeName, err)
	}
	key, err := ratelimit.ParseKey(rl.Key, trusted)
	if err != nil {
		return limiterEntry{}, fmt.Errorf("route %s: rate_limit: %w", routeName, err)
	}
	k := limiterKey{route: routeName, rate: rl.RequestsPerSecond, burst: rl.Burst, store: rl.Store, onErr: rl.OnStoreError}
	if rl.Store == "redis" {
		k.redis = rl.Redis
	}
	if l, ok := s.limiters[k]; ok {
		return limiterEntry{limiter: l, key: key}, nil
	}
	var l ratelimit.Limiter
	if rl.Store == "redis" {
		l, err = ratelimit.NewRedis(s.redisClient(rl.Redis), rl.RequestsPerSecond, rl.Burst, ratelimit.RedisOptions{
			Scope:        routeName,
			KeyPrefix:    rl.Redis.KeyPrefix,
			Timeout:      rl.Redis.Timeout.D(),
			OnStoreError: ratelimit.OnStoreError(rl.OnStoreError),
			Logger:       s.log.With("route", routeName),
			OnStateChange: func(healthy bool) {
				s.metrics.RateLimitStore(routeName, healthy, true)
			},
		})
		if err == nil {
			s.metrics.RateLimitStore(routeName, true, false)
		}
	} else {
		l, err = ratelimit.NewMemory(rl.RequestsPerSecond, rl.Burst)
	}
	if err != nil {
		return limiterEntry{}, fmt.Errorf("route %s: rate_limit: %w", routeName, err)
	}
	s.limiters[k] = l
	return limiterEntry{limiter: l, key: key}, nil
}

// redisClient returns one pooled client per Redis address and settings.
func (s *Server) redisClient(rc config.Redis) *redis.Client {
	if c, ok := s.redis[rc]; ok {
		return c
	}
	c := redis.NewClient(ratelimit.ClientOptions(rc.Address, rc.Password, rc.DB, rc.Timeout.D()))
	s.redis[rc] = c
	return c
}
