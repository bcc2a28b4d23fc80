package ratelimit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// OnStoreError says what a Redis limiter does while Redis cannot be reached.
type OnStoreError string

const (
	// StoreErrorAllow keeps serving: a local Memory limiter with the same
	// rate and burst decides instead, so each proxy instance still limits,
	// though the cluster as a whole then allows up to one limit per instance.
	// It is the default.
	StoreErrorAllow OnStoreError = "allow"
	// StoreErrorDeny refuses every request on the route, with a Retry-After
	// of one second, until Redis answers again.
	StoreErrorDeny OnStoreError = "deny"
)

// Defaults for RedisOptions.
const (
	DefaultRedisTimeout   = 100 * time.Millisecond
	DefaultRedisBackoff   = time.Second
	DefaultRedisKeyPrefix = "proxy:rl:"
)

// RedisOptions configures NewRedis. The zero value of every field picks its
// default.
type RedisOptions struct {
	// Scope keeps the keys of one limiter apart from another's sharing the
	// same Redis; pass the route name, so that keys are scoped per route as
	// they are with one Memory limiter per route.
	Scope string
	// KeyPrefix starts every Redis key (default DefaultRedisKeyPrefix). A
	// stored key is KeyPrefix + Scope + ":" + key, with any ':' in Scope
	// written as "%3A" so that no two scopes can produce the same key.
	KeyPrefix string
	// Timeout bounds one decision's round trip (default DefaultRedisTimeout).
	// Build the client with ClientOptions, or at least ContextTimeoutEnabled,
	// or go-redis uses its own, longer, socket timeouts instead.
	Timeout time.Duration
	// OnStoreError is the policy while Redis fails (default StoreErrorAllow).
	OnStoreError OnStoreError
	// Backoff is how long after a failure requests skip Redis before one of
	// them tries it again (default DefaultRedisBackoff), so an outage costs
	// one timeout per Backoff rather than one per request.
	Backoff time.Duration
	// MaxKeys caps the local limiter used under StoreErrorAllow; see
	// WithMaxKeys.
	MaxKeys int
	// Logger receives one record per switch to and from the fallback
	// (default: discard).
	Logger *slog.Logger
	// OnStateChange, if set, is called once per switch: with false when
	// Redis starts failing, with true when it answers again. It runs on the
	// request that noticed, so it must be quick.
	OnStateChange func(healthy bool)
	// OnLocalDecision, if set, is called for every decision made without
	// Redis because it failed: by the local limiter under StoreErrorAllow,
	// as a refusal under StoreErrorDeny. It runs on the request, so it must
	// be quick.
	OnLocalDecision func()
}

// Redis is a Limiter whose state lives in Redis, so that every proxy
// instance using the same Redis and Scope enforces one shared limit. Each
// decision is one atomic Lua script (EVALSHA, falling back to EVAL when
// Redis does not have it cached).
//
// Use NewRedis; the zero value is not usable.
type Redis struct {
	client  redis.UniversalClient
	g       gcra // interval and limit in whole microseconds, Redis' resolution
	base    string
	scope   string
	timeout time.Duration
	backoff time.Duration
	local   *Memory // stand-in under StoreErrorAllow; nil under StoreErrorDeny
	log     *slog.Logger
	notify  func(healthy bool)
	onLocal func()

	// intervalUS and limitUS are the script's arguments, boxed once.
	intervalUS, limitUS any

	healthy atomic.Bool
	retryAt atomic.Int64  // while unhealthy: now.UnixNano() from which a request may probe Redis
	changes atomic.Uint64 // switches to and from the fallback
	locals  atomic.Uint64 // decisions made without Redis because it failed

	callerClock bool // tests only: decide at the now passed to Allow instead of Redis TIME
}

// gcraScript is the whole decision, run atomically by Redis.
//
// The clock is Redis' own TIME, not the proxy's: every instance then
// measures against one clock, so clock skew between proxy hosts cannot let
// one instance grant requests another has already spent (a host running
// 200 ms fast would otherwise see every key as rested 200 ms early). The
// cost is that now, as passed to Allow, only drives the fallback. ARGV[3],
// a caller's clock in microseconds, exists for tests.
//
// Times are integers in microseconds: Lua numbers are doubles, exact to
// 2^53, which microseconds since 1970 fit and nanoseconds do not.
//
// KEYS[1] key; ARGV[1] interval; ARGV[2] limit (burst*interval).
// Returns {1, TAT-now} when allowed, {0, TAT-now} when denied.
var gcraScript = redis.NewScript(`
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  stored = tonumber(stored)
  if stored and stored > now then tat = stored end
end
local offset = tat + interval - now
if offset > limit then
  return {0, tat - now}
end
-- Once the TAT is reached the key is rested and carries no state: let
-- Redis drop it then.
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX', math.ceil(offset / 1000))
return {1, offset}
`)

// ErrNoClient is returned by NewRedis when client is nil.
var ErrNoClient = errors.New("ratelimit: no Redis client")

// NewRedis returns a Limiter that keeps its state in Redis through client,
// letting each key make burst requests at once and then rate requests per
// second. Rates are rounded to a whole number of microseconds per request.
func NewRedis(client redis.UniversalClient, rate float64, burst int, opts RedisOptions) (*Redis, error) {
	if client == nil {
		return nil, ErrNoClient
	}
	g, err := newGCRA(rate, burst, time.Microsecond)
	if err != nil {
		return nil, err
	}
	l := &Redis{
		client:     client,
		g:          g,
		scope:      opts.Scope,
		timeout:    cmpOr(opts.Timeout, DefaultRedisTimeout),
		backoff:    cmpOr(opts.Backoff, DefaultRedisBackoff),
		log:        opts.Logger,
		notify:     opts.OnStateChange,
		onLocal:    opts.OnLocalDecision,
		intervalUS: g.interval / int64(time.Microsecond),
		limitUS:    g.limit / int64(time.Microsecond),
	}
	scope := strings.ReplaceAll(strings.ReplaceAll(opts.Scope, "%", "%25"), ":", "%3A")
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultRedisKeyPrefix
	}
	l.base = prefix + scope + ":"
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	switch opts.OnStoreError {
	case "", StoreErrorAllow:
		if l.local, err = NewMemory(rate, burst, WithMaxKeys(opts.MaxKeys)); err != nil {
			return nil, err
		}
	case StoreErrorDeny:
	default:
		return nil, fmt.Errorf("ratelimit: on_store_error %q: want allow or deny", opts.OnStoreError)
	}
	l.healthy.Store(true)
	return l, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

var _ Limiter = (*Redis)(nil)

// Allow records one request for key and reports the decision. The decision
// is made at Redis' clock; now is used only while Redis is failing, by the
// fallback and to time the backoff.
func (l *Redis) Allow(ctx context.Context, key string, now time.Time) Decision {
	if !l.healthy.Load() {
		// Only the one request that wins the swap probes Redis; the others
		// carry on with the fallback rather than all waiting on a dead store.
		at := l.retryAt.Load()
		if now.UnixNano() < at || !l.retryAt.CompareAndSwap(at, now.Add(l.backoff).UnixNano()) {
			return l.decideLocally(ctx, key, now)
		}
	}
	d, err := l.eval(ctx, key, now)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up (client gone, server shutting down): that
			// says nothing about Redis.
			return l.fallback(ctx, key, now)
		}
		l.retryAt.Store(now.Add(l.backoff).UnixNano())
		if r, ok := l.client.(stateReloader); ok {
			// A Cluster client keeps its map of slots to nodes for a minute;
			// after a failover the slot's new master is only found once
			// the map is read again, so ask for that on every failure.
			r.ReloadState(ctx)
		}
		if l.healthy.CompareAndSwap(true, false) {
			l.changes.Add(1)
			msg := "rate limit store unavailable; deciding locally until it recovers"
			if l.policy() == string(StoreErrorDeny) {
				msg = "rate limit store unavailable; refusing requests with 429 until it recovers"
			}
			l.log.Warn(msg, slog.String("scope", l.scope), slog.String("on_store_error", l.policy()), slog.Any("err", err))
			if l.notify != nil {
				l.notify(false)
			}
		}
		return l.decideLocally(ctx, key, now)
	}
	if !l.healthy.Load() && l.healthy.CompareAndSwap(false, true) {
		l.changes.Add(1)
		l.log.Info("rate limit store recovered; shared limiting resumed", slog.String("scope", l.scope))
		if l.notify != nil {
			l.notify(true)
		}
	}
	return d
}

func (l *Redis) eval(ctx context.Context, key string, now time.Time) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	keys := []string{l.base + key}
	var cmd *redis.Cmd
	if l.callerClock {
		cmd = gcraScript.Run(ctx, l.client, keys, l.intervalUS, l.limitUS, now.UnixMicro())
	} else {
		cmd = gcraScript.Run(ctx, l.client, keys, l.intervalUS, l.limitUS)
	}
	res, err := cmd.Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(res) != 2 {
		return Decision{}, fmt.Errorf("ratelimit: redis: script returned %d values, want 2", len(res))
	}
	return l.g.decision(res[0] == 1, res[1]*int64(time.Microsecond)), nil
}

// stateReloader is implemented by go-redis' ClusterClient.
type stateReloader interface{ ReloadState(context.Context) }

// decideLocally makes a decision without Redis, which failed, and counts it.
// made by the fallback.
func (l *Redis) decideLocally(ctx context.Context, key string, now time.Time) Decision {
	l.locals.Add(1)
	if l.onLocal != nil {
		l.onLocal()
	}
	return l.fallback(ctx, key, now)
}

// fallback decides while Redis is failing, by the OnStoreError policy.
func (l *Redis) fallback(ctx context.Context, key string, now time.Time) Decision {
	if l.local != nil {
		return l.local.Allow(ctx, key, now)
	}
	return Decision{Limit: l.g.burst, Reset: time.Second, RetryAfter: time.Second}
}

func (l *Redis) policy() string {
	if l.local != nil {
		return string(StoreErrorAllow)
	}
	return string(StoreErrorDeny)
}

// Healthy reports whether the last decision reached Redis.
func (l *Redis) Healthy() bool { return l.healthy.Load() }

// LocalDecisions reports how many decisions were made without Redis
// because it failed.
func (l *Redis) LocalDecisions() uint64 { return l.locals.Load() }

// StateChanges reports how many times the limiter has switched to or from
// its fallback: an odd count means it is on the fallback now.
func (l *Redis) StateChanges() uint64 { return l.changes.Load() }

// ClientOptions returns go-redis options suited to a rate-limit store at
// addr: every wait (dial, pool, read, write) bounded by timeout, context
// deadlines honoured, and no retries, since a decision that misses its
// deadline is better made by the fallback than late.
func ClientOptions(addr, password string, db int, timeout time.Duration) *redis.Options {
	timeout = cmpOr(timeout, DefaultRedisTimeout)
	return &redis.Options{
		Addr:                  addr,
		Password:              password,
		DB:                    db,
		DialTimeout:           timeout,
		DialerRetries:         1,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
	}
}

// RedisClientOptions says how to reach the Redis of a Redis limiter.
type RedisClientOptions struct {
	// Addrs is one server, a cluster's seed nodes, or the Sentinels when
	// MasterName is set.
	Addrs []string
	// MasterName asks the Sentinels at Addrs for the master of that name.
	MasterName string
	// Cluster forces Cluster mode with a single address; more than one
	// address without MasterName always means Cluster.
	Cluster bool
	// Username and Password log in (AUTH [username] password); Username is
	// an ACL user, empty for the default user.
	Username, Password string
	// DB selects the database; Cluster has only 0.
	DB int
	// TLS, if set, is used for every connection, to Sentinels as well.
	TLS *tls.Config
	// Timeout bounds every wait, as in ClientOptions.
	Timeout time.Duration
}

// NewRedisClient returns a client for o: a Sentinel-backed failover client
// when MasterName is set, a Cluster client for several addresses (or
// Cluster), a plain client otherwise; each with the timeouts of
// ClientOptions. A Cluster client follows MOVED and ASK redirects (a slot
// that moved is not a failure), and a Redis limiter asks it to re-read the
// slot map whenever a decision fails, so a promoted replica is found
// without waiting for the client's periodic refresh.
func NewRedisClient(o RedisClientOptions) redis.UniversalClient {
	base := ClientOptions("", o.Password, o.DB, o.Timeout)
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 o.Addrs,
		MasterName:            o.MasterName,
		IsClusterMode:         o.Cluster && o.MasterName == "",
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		TLSConfig:             o.TLS,
		DialTimeout:           base.DialTimeout,
		DialerRetries:         base.DialerRetries,
		ReadTimeout:           base.ReadTimeout,
		WriteTimeout:          base.WriteTimeout,
		PoolTimeout:           base.PoolTimeout,
		ContextTimeoutEnabled: base.ContextTimeoutEnabled,
		MaxRetries:            base.MaxRetries,
	})
}

// RedisLogger adapts l for the Redis client library's own log
// (redis.SetLogger), which writes a line every time a pooled connection
// fails to dial: during an outage, every second per client. The limiter
// already says once per outage what happened and what it does meanwhile,
// so the library's lines go to DEBUG, as structured records of l.
func RedisLogger(l *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return redisLog{l}
}

type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	if r.l.Enabled(ctx, slog.LevelDebug) {
		r.l.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), slog.String("from", "go-redis"))
	}
}
