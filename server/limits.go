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
// the same route and settings; rt holds it (and its Redis client) until rt
// is released. Called with s.mu held or before start.
func (s *Server) limiter(rt *runtime, routeName string, rl *config.RateLimit) (limiterEntry, error) {
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
	var client *redis.Client
	if rl.Store == "redis" {
		// Taken first so rt lets go of it after the limiter that uses it.
		if client, err = s.redisClient(rt, rl.Redis); err != nil {
			return limiterEntry{}, err
		}
	}
	l, err := s.limiters.acquire(rt, k, func() (ratelimit.Limiter, error) {
		return s.newLimiter(routeName, rl, client)
	})
	if err != nil {
		return limiterEntry{}, fmt.Errorf("route %s: rate_limit: %w", routeName, err)
	}
	return limiterEntry{limiter: l, key: key}, nil
}

// newLimiter builds the limiter of a route: in memory, or in Redis through
// client.
func (s *Server) newLimiter(routeName string, rl *config.RateLimit, client *redis.Client) (l ratelimit.Limiter, err error) {
	if rl.Store == "redis" {
		l, err = ratelimit.NewRedis(client, rl.RequestsPerSecond, rl.Burst, ratelimit.RedisOptions{
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
		return l, err
	}
	return ratelimit.NewMemory(rl.RequestsPerSecond, rl.Burst)
}

// redisClient returns one pooled client per Redis address and settings,
// held by rt until rt is released.
func (s *Server) redisClient(rt *runtime, rc config.Redis) (*redis.Client, error) {
	return s.redis.acquire(rt, rc, func() (*redis.Client, error) {
		return redis.NewClient(ratelimit.ClientOptions(rc.Address, rc.Password, rc.DB, rc.Timeout.D())), nil
	})
}
