package forward

import (
	"bytes"
	"net/http"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// A server's answer may name, in its Connection field, fields that concern
// its own connection only; a proxy removes them with the Connection field
// itself (RFC 9110 §7.6.1). net/http's reader drops the whole Connection
// field when it says close (http.ReadResponse, and so http.Transport), and
// with it the names it carried: `Connection: close, X-Secret` would have
// X-Secret relayed. This file finds those names again, and removes what
// they name from the response before it is relayed:
//
//   - our own client's parser (parseResponseHead) keeps the head it parsed,
//     so its header map is made without them (buildHeader), and where it
//     leaves a head to http.ReadResponse, readResponse reads the names
//     from the head still in the read buffer, or from a copy when the
//     head came in more than one read (headTap);
// An answer without close is untouched: net/http keeps its Connection
// field, and copyResponseHeader drops what it names.

// dropNamed deletes from h every field the Connection field values conn
// name, close and keep-alive included (a field named Close is reserved
// for that reason, RFC 9110 §18.4). It allocates nothing.
func dropNamed(h http.Header, conn []string) {
	if len(conn) == 0 {
		return
	}
	for k := range h {
		if listed(conn, k) {
			delete(h, k)
		}
	}
}

// lostConnection reports whether net/http's reader dropped res's
// Connection field for a close, with whatever names it carried: only a
// final HTTP/1.1 answer that closes its connection and has none left.
// An HTTP/1.0 answer keeps its field. Informational answers are relayed
// as the reader left them.
func lostConnection(res *http.Response) bool {
	return res.Close && res.StatusCode >= 200 && res.ProtoAtLeast(1, 1) && res.Header["Connection"] == nil
}

// maxHeadCopy bounds the copy of a head kept to search: a head longer
// than this is not searched, and nothing is removed from it
// (docs/security.md).
const maxHeadCopy = 8 << 10

// headEnd returns the length of the response head at the start of b,
// to the end of the empty line that ends it, with its status code; n is
// -1 while b holds no whole head. Lines end in LF, with or without CR
// before it, as net/textproto reads them.
func headEnd(b []byte) (n, code int) {
	code = -1
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, code
		}
		line := b[i : i+j]
		if i == 0 {
			code = statusCode(line)
		} else if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i + j + 1, code
		}
		i += j + 1
	}
	return -1, code
}

// statusCode is the three-digit code of a status line, or -1. As
// http.ReadResponse, it takes the code after the first space and any
// spaces that follow it.
func statusCode(line []byte) int {
	_, rest, ok := bytes.Cut(line, []byte{' '})
	rest = bytes.TrimLeft(rest, " ")
	if !ok || len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' && rest[3] != '\r' {
		return -1
	}
	code := 0
	for _, c := range rest[:3] {
		if !isDigit(c) {
			return -1
		}
		code = code*10 + int(c-'0')
	}
	return code
}

// finalHead finds the final answer's head at the start of b, after any
// informational ones (103 Early Hints, 100 Continue): it returns where it
// starts and ends, and its code; end is -1 while b holds no whole final
// head. A 101 is final: what follows it is another protocol.
func finalHead(b []byte) (start, end, code int) {
	for {
		n, c := headEnd(b[start:])
		if n < 0 || c < 0 {
			return start, -1, c
		}
		if c >= 200 || c == http.StatusSwitchingProtocols || c < 100 {
			return start, start + n, c
		}
		start += n
	}
}

// connectionValues returns the values of the Connection fields of head,
// a whole head, as net/textproto would read them (names compared without
// regard to case, values trimmed, folded lines joined), copied out of
// head.
func connectionValues(head []byte) []string {
	var conn []string
	in := false // the last field line was a Connection field
	for i := bytes.IndexByte(head, '\n') + 1; i < len(head); {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			break
		}
		line := bytes.TrimSuffix(head[i:i+j], []byte{'\r'})
		i += j + 1
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold (RFC 9112 §5.2): net/textproto joins the line to
			// the one before with a space.
			if in {
				if v := bytes.Trim(line, " \t"); len(v) > 0 {
					conn[len(conn)-1] += " " + string(v)
				}
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		in = ok && httpsyntax.EqualFold(name, "Connection")
		if in {
			conn = append(conn, string(bytes.Trim(value, " \t")))
		}
	}
	return conn
}
