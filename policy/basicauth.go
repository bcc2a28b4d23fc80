package policy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"strconv"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/middleware"
)

// basicAuth asks for a user and password (RFC 7617) and checks them
// against bcrypt hashes. A bcrypt comparison takes tens of milliseconds
// by design, too long to pay on every request of a client that sends the
// same credentials each time, so pairs that passed are remembered, as a
// keyed hash (never the password), in a bounded set. The Authorization
// field, meant for the proxy, is not forwarded.
func basicAuth(p *config.BasicAuthPolicy, env Env) middleware.Middleware {
	realm := p.Realm
	if realm == "" {
		realm = "restricted"
	}
	challenge := `Basic realm=` + strconv.Quote(realm) + `, charset="UTF-8"`
	users := make(map[string][]byte, len(p.Users))
	for u, h := range p.Users {
		users[u] = []byte(h)
	}
	c := newPassCache(users)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pass, ok := r.BasicAuth()
			if !ok || !c.check(users, user, pass) {
				env.Rejected()
				w.Header().Set("WWW-Authenticate", challenge)
				if !grpcwire.Refuse(w, r, http.StatusUnauthorized, "proxy: credentials missing or wrong") {
					http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
				}
				return
			}
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
		})
	}
}

// passCacheSize bounds the remembered pairs; when full the set starts
// over, which costs one bcrypt comparison per active client.
const passCacheSize = 4096

type passCache struct {
	key  []byte
	mu   sync.Mutex
	seen map[[32]byte]struct{}
	// cost is the highest bcrypt cost among the users' hashes: an unknown
	// user is compared against a dummy hash of that cost, so that the
	// answer takes as long as for a known one.
	cost int
}

func newPassCache(users map[string][]byte) *passCache {
	key := make([]byte, 32)
	rand.Read(key)
	cost := bcrypt.DefaultCost
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil && c > cost {
			cost = c
		}
	}
	return &passCache{key: key, seen: map[[32]byte]struct{}{}, cost: cost}
}

// dummies holds one dummy hash per cost, made when an unknown user first
// needs it rather than at every config build: a hash costs as much as a
// login, tens of milliseconds, and a reload rebuilds every policy.
var dummies struct {
	sync.Mutex
	byCost map[int][]byte
}

func dummyHash(cost int) []byte {
	dummies.Lock()
	defer dummies.Unlock()
	if h, ok := dummies.byCost[cost]; ok {
		return h
	}
	h, err := bcrypt.GenerateFromPassword([]byte("no user has this password"), cost)
	if err != nil {
		h, _ = bcrypt.GenerateFromPassword([]byte("no user has this password"), bcrypt.DefaultCost)
	}
	if dummies.byCost == nil {
		dummies.byCost = map[int][]byte{}
	}
	dummies.byCost[cost] = h
	return h
}

func (c *passCache) check(users map[string][]byte, user, pass string) bool {
	hash, known := users[user]
	m := hmac.New(sha256.New, c.key)
	m.Write(hash)
	m.Write([]byte{0})
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var sum [32]byte
	m.Sum(sum[:0])
	c.mu.Lock()
	_, hit := c.seen[sum]
	c.mu.Unlock()
	if hit && known {
		return true
	}
	if !known {
		bcrypt.CompareHashAndPassword(dummyHash(c.cost), []byte(pass))
		return false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	c.mu.Lock()
	if len(c.seen) >= passCacheSize {
		clear(c.seen)
	}
	c.seen[sum] = struct{}{}
	c.mu.Unlock()
	return true
}
