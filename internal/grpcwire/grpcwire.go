// Package grpcwire holds the little of gRPC's HTTP/2 mapping the proxy
// needs to answer gRPC clients in their own terms: telling a gRPC call
// from other requests, its grpc-timeout, and a status of the proxy's own
// sent as a trailers-only response. It knows nothing of protobuf; see
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md.
package grpcwire

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// Status codes the proxy answers with itself, and the range of codes
// gRPC defines (0 OK to 16 UNAUTHENTICATED).
const (
	OK                = 0
	Canceled          = 1
	Unknown           = 2
	DeadlineExceeded  = 4
	PermissionDenied  = 7
	ResourceExhausted = 8
	Unimplemented     = 12
	Internal          = 13
	Unavailable       = 14
	Unauthenticated   = 16
	MaxCode           = 16
)

// FromHTTP is the gRPC status for an HTTP status the proxy answers a
// request with, as gRPC's own table maps HTTP statuses to codes
// (doc/http-grpc-status-mapping.md), but where the proxy knows more: 413
// (a body over max_body) and 429 (a rate limit) are RESOURCE_EXHAUSTED,
// as gRPC says for a message over the receiver's limit or a quota; 504
// and 408 are DEADLINE_EXCEEDED, which a client may retry with a longer
// deadline; 500 (a panic in the proxy) is INTERNAL. Anything else is
// UNKNOWN, as gRPC's table says.
func FromHTTP(status int) int {
	switch status {
	case http.StatusBadRequest, http.StatusInternalServerError:
		return Internal
	case http.StatusUnauthorized:
		return Unauthenticated
	case http.StatusForbidden:
		return PermissionDenied
	case http.StatusNotFound:
		return Unimplemented
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return DeadlineExceeded
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return ResourceExhausted
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return Unavailable
	case 499:
		return Canceled
	}
	return Unknown
}

// Refuse answers r with the gRPC status for the HTTP status the proxy
// refuses it with, and msg, when r is a gRPC call, and reports whether it
// did: a gRPC client that gets an HTML page and a 403 can only call it
// UNKNOWN or PERMISSION_DENIED with no word of why, and one that gets a
// 413 calls it INTERNAL. HTTP headers already set on w (a challenge)
// travel as the call's metadata.
func Refuse(w http.ResponseWriter, r *http.Request, status int, msg string) bool {
	if !IsCall(r.Header) {
		return false
	}
	w.Header().Del("Content-Length")
	WriteStatus(w, r, FromHTTP(status), msg)
	return true
}

// NoStatus is reqinfo.Info.GRPCStatus for a call no grpc-status ended.
const NoStatus = -1

// IsCall reports whether h is the header of a gRPC call:
// application/grpc, alone or with a +format or parameters. gRPC-Web
// (application/grpc-web) is not: its trailers travel in the body.
func IsCall(h http.Header) bool {
	v := h["Content-Type"]
	if len(v) == 0 {
		return false
	}
	rest, ok := strings.CutPrefix(v[0], "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// Timeout returns the call's grpc-timeout: an integer of at most 8
// digits and a unit, H M S m u n.
func Timeout(h http.Header) (time.Duration, bool) {
	v := h["Grpc-Timeout"]
	if len(v) != 1 || len(v[0]) < 2 || len(v[0]) > 9 {
		return 0, false
	}
	s := v[0]
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	// 99999999H overflows a Duration: as good as no deadline.
	if n > uint64(1<<63-1)/uint64(unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// ParseStatus reads a grpc-status value; ok is false for anything but a
// code gRPC defines.
func ParseStatus(v []string) (code int, ok bool) {
	if len(v) == 0 || len(v[0]) == 0 || len(v[0]) > 2 {
		return 0, false
	}
	c, err := strconv.Atoi(v[0])
	if err != nil || c < 0 || c > MaxCode {
		return 0, false
	}
	return c, true
}

// WriteStatus answers a gRPC call with code and msg as a trailers-only
// response: HTTP 200 and the status in the one HEADERS frame, which gRPC
// clients read as the call's end. Without it, a client turns a bare 502
// or 503 into UNKNOWN or UNAVAILABLE with no word of why. It notes the
// status in the request's record for the metrics.
func WriteStatus(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.GRPC, info.GRPCStatus = true, code
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	if msg != "" {
		h.Set("Grpc-Message", encodeMessage(msg))
	}
	w.WriteHeader(http.StatusOK)
}

// encodeMessage percent-encodes msg as grpc-message wants: every byte
// outside printable ASCII, and '%' itself.
func encodeMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Frames follows the length-prefixed messages of a gRPC stream (a flag
// byte, a 4-byte big-endian length, the message) as they pass, so that a
// stream cut short can be told apart at a message's edge, where a status
// may still end it cleanly, from one cut inside a message. The zero value
// is at the start of a stream.
type Frames struct {
	head [5]byte
	nh   int    // bytes of the current prefix seen
	left uint32 // bytes of the current message still to come
}

// Feed moves past p.
func (f *Frames) Feed(p []byte) {
	for len(p) > 0 {
		if f.left > 0 {
			n := min(uint32(len(p)), f.left)
			f.left -= n
			p = p[n:]
			continue
		}
		n := copy(f.head[f.nh:], p)
		f.nh += n
		p = p[n:]
		if f.nh == len(f.head) {
			f.nh = 0
			f.left = uint32(f.head[1])<<24 | uint32(f.head[2])<<16 | uint32(f.head[3])<<8 | uint32(f.head[4])
		}
	}
}

// AtEdge reports whether the bytes fed so far end with a whole message.
func (f *Frames) AtEdge() bool { return f.nh == 0 && f.left == 0 }
