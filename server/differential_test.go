package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// pipelineMenu is what one byte of a fuzz input may ask for: requests of
// every kind the fast path serves, hands over or refuses.
var pipelineMenu = []string{
	"GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n",
	"HEAD /p%d HTTP/1.1\r\nHost: t\r\n\r\n",
	"POST /p%d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p%d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\r\n",
	"GET /slow%d HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /p%d HTTP/1.1\r\nHost: t\r\nx-custom: a\r\nUser-Agent: f\r\n\r\n",
	"POST /p%d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"GET /p%d?q=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
	"GET /p%d HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
	"\r\n",
}

// pipeline turns a fuzz input into request bytes and the offsets where
// the client splits its writes: each byte's low nibble picks a request
// from the menu, its high bit a write boundary before it. At most one
// request is slow, as a slow answer costs its delay.
func pipeline(data []byte) (raw []byte, splits []int) {
	if len(data) > 24 {
		data = data[:24]
	}
	slow := false
	for i, b := range data {
		k := int(b&0x0f) % len(pipelineMenu)
		if k == 4 {
			if slow {
				k = 0
			}
			slow = true
		}
		if b&0x80 != 0 {
			splits = append(splits, len(raw))
		}
		if b&0x40 != 0 && len(raw) > 0 {
			// A split inside the last request's bytes.
			splits = append(splits, len(raw)-int(b&0x3f)%len(pipelineMenu[0]))
		}
		if strings.Contains(pipelineMenu[k], "%d") {
			raw = fmt.Appendf(raw, pipelineMenu[k], i)
		} else {
			raw = append(raw, pipelineMenu[k]...)
		}
	}
	return append(raw, "GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"...), splits
}

// canonical rewrites the answers in b, to requests whose methods are
// those of raw in order, with each head's fields sorted: the direct lane
// relays a server's fields in the server's order, net/http's writer sorts
// them. Date and X-Request-Id differ from run to run and are left out.
func canonical(b, raw []byte) string {
	methods := regexp.MustCompile(`(GET|HEAD|POST) /(?:p\d|slow|last)`).FindAllSubmatch(raw, -1)
	br := bufio.NewReader(bytes.NewReader(b))
	var out strings.Builder
	for i := 0; ; i++ {
		method := "GET"
		if i < len(methods) {
			method = string(methods[i][1])
		}
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			rest, _ := io.ReadAll(br)
			fmt.Fprintf(&out, "[%d: %q]", i, rest)
			return out.String()
		}
		body, err := io.ReadAll(res.Body)
		fmt.Fprintf(&out, "%s\n", res.Status)
		res.Header.Del("Date")
		res.Header.Del("X-Request-Id")
		keys := make([]string, 0, len(res.Header))
		for k := range res.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&out, "%s: %q\n", k, res.Header[k])
		}
		fmt.Fprintf(&out, "close %v length %d body %q err %v\n\n", res.Close, res.ContentLength, body, err)
	}
}

// send writes raw to addr in the pieces splits say, and returns all the
// proxy answered until it closed the connection, canonical.
func send(t *testing.T, addr string, raw []byte, splits []int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		last := 0
		for _, s := range append(splits, len(raw)) {
			if s <= last || s > len(raw) {
				continue
			}
			if _, err := c.Write(raw[last:s]); err != nil {
				return
			}
			last = s
		}
	}()
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("no end to the answers; got:\n%s", b)
	}
	return canonical(b, raw)
}

// FuzzFastPathMatchesNetHTTP sends the same pipelines, split at the same
// points and with slow answers among them, to a proxy on the fast path and
// to one on net/http's server alone, and wants the same bytes back. The
// seed corpus in testdata runs with the other tests.
func FuzzFastPathMatchesNetHTTP(f *testing.F) {
	f.Add([]byte{4, 0, 0, 0, 1, 2, 3, 5})
	f.Add([]byte{0x83, 0x40, 0xc9, 0x02, 0x06, 0x01})
	rec := &recorder{}
	url := rec.startFor(f, func(w http.ResponseWriter, r *http.Request) {
		if bytes.HasPrefix([]byte(r.URL.Path), []byte("/slow")) {
			// Longer than the fast path's watch delay (100 ms).
			time.Sleep(150 * time.Millisecond)
		}
	})
	fast := startProxy(f, fastPathOn+"servers:\n  - url: "+url+"\n")
	plain := startProxy(f, "client: {fast_path: false}\nservers:\n  - url: "+url+"\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, splits := pipeline(data)
		got := send(t, fast.Addr(), raw, splits)
		want := send(t, plain.Addr(), raw, splits)
		if got != want {
			t.Fatalf("the fast path answered\n%s\nnet/http answered\n%s\nto\n%q (splits %v)", got, want, raw, splits)
		}
	})
}
