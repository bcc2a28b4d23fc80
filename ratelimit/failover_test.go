package ratelimit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/internal/redistest"
	"github.com/tbsphathuynh/proxy/internal/testcert"
)

// recoverDeadline bounds how long a failover may take in these tests:
// Redis needs a few seconds (a node is failed after one second, then an
// election); the rest is room for a loaded machine. It is below the
// minute after which a Cluster client re-reads its slot map by itself, so
// a limiter that waited for that fails here.
const recoverDeadline = 30 * time.Second

func newUniversal(t testing.TB, o RedisClientOptions) redis.UniversalClient {
	t.Helper()
	o.Timeout = cmpOr(o.Timeout, testTimeout)
	c := NewRedisClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// failover runs a steady load of decisions on key through l, calls kill,
// and waits until l has gone to its fallback and come back by itself. It
// logs the decisions l made locally meanwhile and the time from kill to
// shared limiting again, and checks that each switch was said once.
func failover(t *testing.T, l *Redis, tr *transitions, hooked *atomic.Uint64, key string, kill func()) {
	t.Helper()
	ctx := context.Background()
	var decided atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.Allow(ctx, key, time.Now())
				decided.Add(1)
				// Pace the load, so that it does not starve the Redis
				// processes of the machine's two CPUs.
				time.Sleep(time.Millisecond)
			}
		})
	}
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer stopLoad()
	poll(t, "decisions before the kill", func() bool { return decided.Load() >= 100 })
	if !l.Healthy() || l.LocalDecisions() != 0 {
		t.Fatalf("before the kill: Healthy %v, %d local decisions", l.Healthy(), l.LocalDecisions())
	}
	killed := time.Now()
	kill()
	poll(t, "the limiter to notice the dead master", func() bool { return l.StateChanges() >= 1 })
	poll(t, "shared limiting to resume", func() bool { return l.Healthy() })
	recovered := time.Since(killed)
	stopLoad()
	t.Logf("shared limiting resumed %v after the master was killed; %d of %d decisions were made locally meanwhile",
		recovered.Round(time.Millisecond), l.LocalDecisions(), decided.Load())
	if l.LocalDecisions() == 0 || hooked.Load() != l.LocalDecisions() {
		t.Errorf("LocalDecisions %d, OnLocalDecision calls %d: want equal and above 0", l.LocalDecisions(), hooked.Load())
	}
	// One line and one call per switch, not one per failed probe.
	tr.check(t, false, true)
}

// poll waits for cond, failing t after recoverDeadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(recoverDeadline); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", recoverDeadline, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sharedAgain checks that two instances, with clients a and b, share one
// limit: b sees what a spends.
func sharedAgain(t *testing.T, a, b redis.UniversalClient) {
	t.Helper()
	la := mustRedis(t, a, 1, 5, RedisOptions{Scope: "api", Timeout: testTimeout})
	lb := mustRedis(t, b, 1, 5, RedisOptions{Scope: "api", Timeout: testTimeout})
	ctx := context.Background()
	for range 5 {
		la.Allow(ctx, "after-failover", time.Now())
	}
	if d := lb.Allow(ctx, "after-failover", time.Now()); d.Allowed || !la.Healthy() || !lb.Healthy() {
		t.Errorf("another instance allowed a key this one exhausted (healthy %v, %v): %+v", la.Healthy(), lb.Healthy(), d)
	}
}

func TestRedisClusterFailover(t *testing.T) {
	c := redistest.NewCluster(t)
	var tr transitions
	var hooked atomic.Uint64
	opts := tr.options(StoreErrorAllow)
	opts.OnLocalDecision = func() { hooked.Add(1) }
	client := newUniversal(t, RedisClientOptions{Addrs: c.Addrs()})
	l := mustRedis(t, client, 1000, 1000, opts)
	slow := mustRedis(t, client, 1, 5, RedisOptions{Scope: "api", Timeout: testTimeout})
	ctx := context.Background()

	// Keys on every master are decided by the script, which each master
	// loads for itself: after SCRIPT FLUSH the EVALSHA of every node meets
	// NOSCRIPT, and the decision is still made by Redis.
	keys := map[int]string{}
	for i := 0; len(keys) < len(c.Masters); i++ {
		k := "client-" + string(rune('a'+i))
		keys[c.MasterIndex(t, l.base+k)] = k
	}
	for _, k := range keys {
		slow.Allow(ctx, k, time.Now())
	}
	for _, m := range c.Masters {
		rc := redis.NewClient(&redis.Options{Addr: m.Addr})
		if err := rc.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	for i, k := range keys {
		if d := slow.Allow(ctx, k, time.Now()); !d.Allowed || d.Remaining != 3 || !slow.Healthy() {
			t.Fatalf("key on master %d after SCRIPT FLUSH: %+v, healthy %v; want the second request, decided by Redis", i, d, slow.Healthy())
		}
	}

	// Kill the master of one key, under load on that key: its replica
	// takes over, and the limiter finds it without help.
	key := keys[1]
	failover(t, l, &tr, &hooked, key, c.Masters[1].Stop)
	sharedAgain(t, l.client, newUniversal(t, RedisClientOptions{Addrs: c.Addrs()}))
}

func TestRedisSentinelFailover(t *testing.T) {
	st := redistest.NewSentinels(t)
	var tr transitions
	var hooked atomic.Uint64
	opts := tr.options(StoreErrorAllow)
	opts.OnLocalDecision = func() { hooked.Add(1) }
	client := newUniversal(t, RedisClientOptions{Addrs: st.Addrs(), MasterName: redistest.MasterName})
	l := mustRedis(t, client, 1000, 1000, opts)
	failover(t, l, &tr, &hooked, "client", st.Master.Stop)
	if got := st.MasterAddr(t); got != st.Replica.Addr {
		t.Errorf("Sentinels name %s as master, want the promoted replica %s", got, st.Replica.Addr)
	}
	sharedAgain(t, client, newUniversal(t, RedisClientOptions{Addrs: st.Addrs(), MasterName: redistest.MasterName}))
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns
// its files and a pool trusting it.
func writeCert(t *testing.T, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := testcert.Write(certFile, keyFile, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return certFile, keyFile, pool
}

// TLSACLArgs are the settings of a TLS-only server whose default user is
// off and whose user "proxy" may run the limiter's script on its own keys
// and nothing else: what docs/rate-limiting.md advises.
var tlsACLArgs = []string{
	"--user", "default", "off",
	"--user", "proxy", "on", ">s3cret", "resetkeys", "~proxy:rl:*", "resetchannels",
	"-@all", "+eval", "+evalsha", "+get", "+set", "+time", "+ping", "+hello",
}

func TestRedisTLSWithACLUser(t *testing.T) {
	cert, key, pool := writeCert(t, "redis")
	_, _, otherPool := writeCert(t, "other")
	srv := redistest.NewServerWith(t, redistest.Options{
		TLS:  &redistest.TLS{CertFile: cert, KeyFile: key, CAFile: cert},
		Args: tlsACLArgs,
	})
	ctx := context.Background()
	tlsCfg := func(p *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: p, MinVersion: tls.VersionTLS12} }
	cases := []struct {
		name     string
		o        RedisClientOptions
		wantUp   bool
		wantFail string
	}{
		{"ACL user over TLS", RedisClientOptions{Username: "proxy", Password: "s3cret", TLS: tlsCfg(pool)}, true, ""},
		{"wrong password", RedisClientOptions{Username: "proxy", Password: "guess", TLS: tlsCfg(pool)}, false, "WRONGPASS"},
		{"wrong CA", RedisClientOptions{Username: "proxy", Password: "s3cret", TLS: tlsCfg(otherPool)}, false, "certificate"},
		{"no TLS", RedisClientOptions{Username: "proxy", Password: "s3cret"}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Addrs = []string{srv.Addr}
			var tr transitions
			l := mustRedis(t, newUniversal(t, tc.o), 10, 2, tr.options(StoreErrorDeny))
			for range 3 {
				l.Allow(ctx, "k", time.Now())
			}
			if l.Healthy() != tc.wantUp {
				t.Fatalf("Healthy = %v, want %v; log:\n%s", l.Healthy(), tc.wantUp, tr.log.String())
			}
			if tc.wantFail != "" && !strings.Contains(tr.log.String(), tc.wantFail) {
				t.Errorf("the warning does not say %q:\n%s", tc.wantFail, tr.log.String())
			}
			if tc.wantUp {
				// Burst 2: the third request of the three is refused, by Redis.
				if d := l.Allow(ctx, "k", time.Now()); d.Allowed || l.LocalDecisions() != 0 {
					t.Errorf("fourth request: %+v, %d local decisions; want refused by Redis", d, l.LocalDecisions())
				}
			}
		})
	}
}
