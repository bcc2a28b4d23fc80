package accesslog

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"sync"
	"unsafe"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// RequestIDHeader carries the request ID to servers and back to the client.
const RequestIDHeader = "X-Request-Id"

// requestID returns the client's request ID when it is sane, or a new one,
// as a one-value header slice ready to share between the request and
// response headers (no one writes into a header value slice; an append to
// one of capacity one copies it). IDs from clients are kept so a request
// can be followed across proxies; odd ones are replaced, since they end up
// in logs.
func requestID(r *http.Request) []string {
	if v := r.Header[RequestIDHeader]; len(v) == 1 && validID(v[0]) {
		return v[:1:1]
	}
	return newIDValue()
}

func validID(s string) bool { return httpsyntax.RequestID(s) }

// NewID returns a random 128-bit ID in hex. math/rand/v2's generator is
// seeded from the OS and unpredictable enough for correlation IDs, at a
// fraction of crypto/rand's cost.
func NewID() string { return newIDValue()[0] }

// idLen is the length of an ID: 128 bits in hex.
const idLen = 32

// idsPerChunk is how many IDs one allocation makes room for.
const idsPerChunk = 64

// idChunk hands out IDs carved from one buffer, so that making an ID costs
// an allocation only once every idsPerChunk IDs rather than two each (the
// string and the header slice holding it). Every byte and slot is written
// once, before the string or slice over it is handed out, and never again:
// the IDs are as immutable as any other string, and the chunk is freed
// when the last of them is. A long-lived request (a WebSocket) keeps its
// chunk, 3 KiB, alive.
type idChunk struct {
	buf  []byte
	vals []string
	n    int
}

// idChunks gives each goroutine a chunk of its own while it makes an ID.
var idChunks = sync.Pool{New: func() any { return new(idChunk) }}

func newIDValue() []string {
	c := idChunks.Get().(*idChunk)
	if c.buf == nil || c.n == idsPerChunk {
		c.buf = make([]byte, idsPerChunk*idLen)
		c.vals = make([]string, idsPerChunk)
		c.n = 0
	}
	i := c.n
	c.n++
	out := c.buf[i*idLen : (i+1)*idLen : (i+1)*idLen]
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	hex.Encode(out, b[:])
	c.vals[i] = unsafe.String(&out[0], idLen)
	v := c.vals[i : i+1 : i+1]
	idChunks.Put(c)
	return v
}
