package server

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/ratelimit"
)

// limiterKey identifies a limiter across reloads: the same route with the
// same limit keeps its counters, so a reload never hands every client a
// fresh burst.
type limiterKey struct {
	route  string
	rate   float64
	burst  int
	store  string
	redis  redisKey
	prefix string
	onErr  string
}

// redisKey identifies a Redis client: the same settings, and the same
// contents of the TLS files they name, share one pooled client. A reload
// after a certificate file was replaced builds a new client that reads it.
type redisKey struct {
	addrs    string // the addresses, one per line
	master   string
	cluster  bool
	username string
	password string
	db       int
	timeout  config.Duration
	tls      bool
	tlsFiles config.RedisTLS
	tlsSum   [sha256.Size]byte // of the files' contents
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
	var client redis.UniversalClient
	if rl.Store == "redis" {
		k.prefix = rl.Redis.KeyPrefix
		// Taken first so rt lets go of it after the limiter that uses it.
		if k.redis, client, err = s.redisClient(rt, &rl.Redis); err != nil {
			return limiterEntry{}, fmt.Errorf("route %s: rate_limit: %w", routeName, err)
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
func (s *Server) newLimiter(routeName string, rl *config.RateLimit, client redis.UniversalClient) (l ratelimit.Limiter, err error) {
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
			OnLocalDecision: func() { s.metrics.RateLimitStoreError(routeName) },
		})
		if err == nil {
			s.metrics.RateLimitStore(routeName, true, false)
		}
		return l, err
	}
	return ratelimit.NewMemory(rl.RequestsPerSecond, rl.Burst)
}

// redisClient returns one pooled client per Redis settings (and TLS file
// contents), held by rt until rt is released.
func (s *Server) redisClient(rt *runtime, rc *config.Redis) (redisKey, redis.UniversalClient, error) {
	k := redisKey{
		addrs:    strings.Join(rc.Addrs(), "\n"),
		master:   rc.MasterName,
		cluster:  rc.Cluster,
		username: rc.Username,
		password: rc.Password,
		db:       rc.DB,
		timeout:  rc.Timeout,
	}
	var tlsCfg *tls.Config
	if rc.TLS != nil {
		var err error
		k.tls, k.tlsFiles = true, *rc.TLS
		if tlsCfg, k.tlsSum, err = redisTLS(rc.TLS); err != nil {
			return k, nil, err
		}
	}
	c, err := s.redis.acquire(rt, k, func() (redis.UniversalClient, error) {
		return ratelimit.NewRedisClient(ratelimit.RedisClientOptions{
			Addrs:      rc.Addrs(),
			MasterName: rc.MasterName,
			Cluster:    rc.Cluster,
			Username:   rc.Username,
			Password:   rc.Password,
			DB:         rc.DB,
			TLS:        tlsCfg,
			Timeout:    rc.Timeout.D(),
		}), nil
	})
	return k, c, err
}

// redisTLS builds the TLS config of a Redis section from its files, and a
// digest of their contents. The config package has checked the files
// already; this reads them again, as they are now.
func redisTLS(t *config.RedisTLS) (*tls.Config, [sha256.Size]byte, error) {
	h := sha256.New()
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		h.Write(pem)
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, [sha256.Size]byte{}, fmt.Errorf("redis.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		certPEM, err := os.ReadFile(t.CertFile)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("redis.tls.cert_file: %w", err)
		}
		keyPEM, err := os.ReadFile(t.KeyFile)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("redis.tls.key_file: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("redis.tls.key_file: %w", err)
		}
		h.Write(certPEM)
		h.Write(keyPEM)
		cfg.Certificates = []tls.Certificate{pair}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return cfg, sum, nil
}
