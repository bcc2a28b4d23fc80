package h1

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// directFunc is a Direct handler made of a function.
type directFunc func(x *Exchange) bool

func (f directFunc) ServeDirect(x *Exchange) bool { return f(x) }

// serveDirect serves d before h.
func serveDirect(t *testing.T, d Direct, h http.Handler) string {
	t.Helper()
	s := New(&http.Server{Handler: h})
	s.Direct = d
	_, addr := start(t, s)
	return addr
}

// echoDirect answers requests to /direct/... itself with their head as it
// saw it, and declines the rest.
func echoDirect(x *Exchange) bool {
	if !bytes.HasPrefix(x.Target(), []byte("/direct/")) {
		return false
	}
	var b bytes.Buffer
	b.Write(x.Method())
	b.WriteByte(' ')
	b.Write(x.Target())
	for i := range x.Fields() {
		name, value := x.Field(i)
		b.WriteString("|" + string(name) + "=" + string(value))
	}
	head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(b.Len()) + "\r\n"
	if x.ClientClose() {
		head += "Connection: close\r\n"
	}
	x.Write([]byte(head + "\r\n" + b.String()))
	return true
}

// A Direct handler serves what it takes from the raw head, fields as the
// client spelled them; what it declines reaches the Handler whole, on the
// same kept-alive connection, pipelined or not.
func TestDirectServesOrDeclines(t *testing.T) {
	addr := serveDirect(t, directFunc(echoDirect), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "handler "+r.Method+" "+r.URL.String()+" "+r.Header.Get("X-Token"))
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET /direct/a?q=1 HTTP/1.1\r\nHost: t\r\nx-token:  abc \r\n\r\n"+
		"HEAD /other HTTP/1.1\r\nHost: t\r\nX-Token: def\r\n\r\n")
	if _, got := readBody(t, br, "GET"); got != "GET /direct/a?q=1|Host=t|x-token=abc" {
		t.Errorf("direct answer %q", got)
	}
	if res, _ := readBody(t, br, "HEAD"); res.StatusCode != 200 {
		t.Errorf("declined HEAD: status %d", res.StatusCode)
	}
	io.WriteString(c, "GET /other HTTP/1.1\r\nHost: t\r\nX-Token: ghi\r\n\r\n")
	if _, got := readBody(t, br, "GET"); got != "handler GET /other ghi" {
		t.Errorf("declined request answered %q", got)
	}
	io.WriteString(c, "GET /direct/b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	if res, got := readBody(t, br, "GET"); got != "GET /direct/b|Host=t|Connection=close" || !res.Close {
		t.Errorf("direct answer %q, close %v", got, res.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection still open after Connection: close (%v)", err)
	}
}

// A request with a body never goes the direct way: the Handler reads it.
func TestDirectNotOfferedBodies(t *testing.T) {
	addr := serveDirect(t, directFunc(echoDirect), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "handler "+string(b))
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "POST /direct/a HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody")
	if _, got := readBody(t, br, "POST"); got != "handler body" {
		t.Errorf("answer %q", got)
	}
}

// Close ends the connection after the answer, for answers framed by it.
func TestDirectClose(t *testing.T) {
	addr := serveDirect(t, directFunc(func(x *Exchange) bool {
		x.Write([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end"))
		x.Close()
		return true
	}), nil)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil || !bytes.HasSuffix(b, []byte("\r\n\r\nto the end")) {
		t.Fatalf("read %q, %v; want the answer, then the end of the connection", b, err)
	}
}

// The exchange's context ends when the client leaves during a slow
// request, as a Handler's request context does.
func TestDirectClientGone(t *testing.T) {
	arrived, ended := make(chan struct{}), make(chan error, 1)
	addr := serveDirect(t, directFunc(func(x *Exchange) bool {
		close(arrived)
		select {
		case <-x.Context().Done():
			ended <- x.Context().Err()
		case <-time.After(10 * time.Second):
			ended <- nil
		}
		return true
	}), nil)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	<-arrived
	c.Close()
	select {
	case err := <-ended:
		if err != context.Canceled {
			t.Fatalf("context ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the direct handler never learned that its client had gone")
	}
}

// A panicking Direct handler closes its connection and nothing else: the
// server goes on serving others.
func TestDirectPanic(t *testing.T) {
	addr := serveDirect(t, directFunc(func(x *Exchange) bool {
		if bytes.Equal(x.Target(), []byte("/boom")) {
			x.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart"))
			panic(http.ErrAbortHandler)
		}
		return echoDirect(x)
	}), nil)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Fatal("a cut-off answer read as complete")
	}
	c2, br2 := dial(t, addr)
	io.WriteString(c2, "GET /direct/x HTTP/1.1\r\nHost: t\r\n\r\n")
	if _, got := readBody(t, br2, "GET"); got != "GET /direct/x|Host=t" {
		t.Errorf("next connection answered %q", got)
	}
}

// Through its ResponseWriter a direct answer is framed as a Handler's:
// Date and Content-Length added, no body for HEAD, the connection kept
// alive unless the client asked to close it.
func TestDirectResponseWriter(t *testing.T) {
	addr := serveDirect(t, directFunc(func(x *Exchange) bool {
		w := x.ResponseWriter()
		w.Header().Set("X-Target", string(x.Target()))
		io.WriteString(w, "from the writer")
		return true
	}), nil)
	c, br := dial(t, addr)
	io.WriteString(c, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: t\r\n\r\n")
	res, body := readBody(t, br, "HEAD")
	if body != "" || res.Header.Get("X-Target") != "/h" || res.Header.Get("Date") == "" {
		t.Errorf("HEAD: body %q, header %v", body, res.Header)
	}
	res, body = readBody(t, br, "GET")
	if body != "from the writer" || res.ContentLength != int64(len(body)) || res.Header.Get("X-Target") != "/g" || res.Close {
		t.Errorf("GET: body %q, length %d, header %v, close %v", body, res.ContentLength, res.Header, res.Close)
	}
	io.WriteString(c, "GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	if res, _ = readBody(t, br, "GET"); !res.Close {
		t.Error("no Connection: close for a client that asked for it")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection still open after Connection: close (%v)", err)
	}
}

// A relay's raw lines go out after the handler's header as they are, with
// what they say about length, type and date taken into account; where
// they could need rewriting, SetRawHeader declines them.
func TestSetRawHeader(t *testing.T) {
	type rawSetter interface {
		SetRawHeader(code int, lines []byte, length int64, typ, encoding, date bool) bool
	}
	addr := serveDirect(t, directFunc(func(x *Exchange) bool {
		w := x.ResponseWriter()
		rs := w.(rawSetter)
		switch string(x.Target()) {
		case "/declined":
			w.Header().Set("Content-Length", "2")
			if rs.SetRawHeader(200, []byte("X-Raw: 1\r\n"), -1, false, false, false) ||
				rs.SetRawHeader(204, nil, -1, false, false, false) {
				panic("raw lines taken where they could need rewriting")
			}
			w.WriteHeader(200)
			if rs.SetRawHeader(200, nil, -1, false, false, false) {
				panic("raw lines taken after WriteHeader")
			}
			io.WriteString(w, "ok")
		default:
			w.Header().Set("X-Map", "m")
			lines := []byte("Content-Length: 6\r\nX-Raw: r\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n")
			if !rs.SetRawHeader(201, lines, 6, false, false, true) {
				panic("raw lines declined")
			}
			w.WriteHeader(201)
			io.WriteString(w, "<html>")
		}
		return true
	}), nil)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /raw HTTP/1.1\r\nHost: t\r\n\r\nGET /declined HTTP/1.1\r\nHost: t\r\n\r\n")
	head, err := br.ReadString('\n')
	for err == nil {
		var line string
		line, err = br.ReadString('\n')
		head += line
		if line == "\r\n" {
			break
		}
	}
	// The length is the raw line's, so the body goes as it is; the type is
	// sniffed, the Date is the relayed one.
	want := "HTTP/1.1 201 Created\r\nX-Map: m\r\nContent-Length: 6\r\nX-Raw: r\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
	if head != want {
		t.Errorf("head\n%q\nwant\n%q", head, want)
	}
	body := make([]byte, 6)
	if _, err := io.ReadFull(br, body); err != nil || string(body) != "<html>" {
		t.Fatalf("body %q, %v", body, err)
	}
	res, got := readBody(t, br, "GET")
	if got != "ok" || res.Header.Get("X-Raw") != "" {
		t.Errorf("declined: body %q, header %v", got, res.Header)
	}
}

// An answer larger than the socket's buffers, to a client that reads only
// after a while, reaches it whole: the write waits for the socket to take
// more rather than failing or losing bytes. A client that leaves mid-way
// ends the write with an error.
func TestDirectWriteWaitsForASlowReader(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB, more than loopback buffers hold
	wrote := make(chan error, 2)
	addr := serveDirect(t, directFunc(func(x *Exchange) bool {
		_, err := x.Write(append([]byte("HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...))
		wrote <- err
		return true
	}), http.NotFoundHandler())

	c, br := dial(t, addr)
	// No deadline on reading 16 MiB: under -race beside other work it
	// took 7-9 s, and the dial's 10 s ended it with an i/o timeout.
	c.SetDeadline(time.Time{})
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
	select {
	case err := <-wrote:
		t.Fatalf("a 16 MiB answer was written before the client read any (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, got := readBody(t, br, "GET"); got != string(body) {
		t.Errorf("got %d bytes, want the %d written", len(got), len(body))
	}
	if err := <-wrote; err != nil {
		t.Errorf("write: %v", err)
	}

	c, br = dial(t, addr)
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
	if _, err := br.ReadByte(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// As Conn.Write says it: the log reads the same either way.
	var op *net.OpError
	if err := <-wrote; !errors.As(err, &op) || op.Op != "write" {
		t.Errorf("a write to a client that left: %v, want Conn.Write's error", err)
	}
}
