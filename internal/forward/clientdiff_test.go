//go:build linux

package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/tbsphathuynh/proxy/upstream"
)

// FuzzClientMatchesTransport holds this package's upstream client (the fast
// path: client.go, resparse.go, reqwrite.go, probe_unix.go) to
// http.Transport (client.fast_path: false). Each input is two requests and,
// for each, the raw bytes a backend answers with, with the writes split,
// delayed, cut by a close or a reset, or withheld, as the script says (see
// parseScript). Both modes send the same two requests through an Upstream
// (its send is where the fast path is chosen) to a raw loopback backend
// playing the same script; what the proxy would relay must be the same:
// the error class, status, headers after the hop-by-hop removal, length,
// body bytes, the body's error class, trailers and the informational
// answers, and what the backend saw: the requests, on which connection
// each came (so whether the second reused the first), and how many
// connections it accepted.
//
// Where the two legitimately differ the rule is written out below, next
// to the code that applies it; everything else must be equal. The harness
// takes no decision from timing: a split write waits until the client has
// read what came before, and before the second request the first
// connection is left in a settled state (see settle), so that net/http's
// reader goroutine and our pool's probe see the same thing. Deadlines
// only guard against a hang.
func FuzzClientMatchesTransport(f *testing.F) {
	f.Add(byte(0), byte(0),
		[]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
		[]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, m1, m2 byte, s1, s2 []byte) {
		reqs := [2]requestSpec{specOf(m1, 1), specOf(m2, 2)}
		scripts := [2]script{parseScript(s1, reqs[0].method), parseScript(s2, reqs[1].method)}
		want := runDifferential(t, false, reqs, scripts)
		got := runDifferential(t, true, reqs, scripts)
		compareRuns(t, reqs, scripts, want, got)
	})
}

// requestSpec is one request of an input.
type requestSpec struct {
	method string
	path   string
	body   byte // 0: none, 1: with a length, 2: chunked (unknown length)
}

var diffMethods = [8]string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "GET", "HEAD"}

// specOf reads a request from a byte: the low three bits the method, the
// next two the body.
func specOf(b byte, n int) requestSpec {
	s := requestSpec{method: diffMethods[b&7], path: fmt.Sprintf("/r%d", n), body: b >> 3 & 3}
	if s.body == 3 {
		s.body = 0
	}
	return s
}

func (s requestSpec) newRequest(ctx context.Context, addr string) *http.Request {
	var body io.Reader
	switch s.body {
	case 1:
		body = strings.NewReader("request body")
	case 2:
		// Neither a *strings.Reader nor a *bytes.Buffer: its length is
		// unknown, and the transport sends it chunked.
		body = io.MultiReader(strings.NewReader("request "), strings.NewReader("body"))
	}
	req, _ := http.NewRequestWithContext(ctx, s.method, "http://"+addr+s.path, body)
	req.Header.Set("X-Request", s.path)
	return req
}

// side reports whether our client carries the request in the given mode.
func (s requestSpec) ours(fast bool) bool { return fast && s.body == 0 }

// A script is what the backend does for one request. In the fuzz input,
// 0xFF starts a command and the byte after it says which; every other
// byte is sent as it is:
//
//	0xFF 'd'   a drip: what came before is written, and the rest waits
//	           until the client has read it all (or is done)
//	0xFF 'l'   a later write: the rest waits until the client is done with
//	           the exchange (stray bytes in a later segment); a plain drip
//	           when the answer is not whole by then
//	0xFF 'c'   close the connection here (FIN); the rest is dropped
//	0xFF 'r'   reset the connection here (RST); the rest is dropped
//	0xFF 'h'   send nothing at all and keep the connection open: the
//	           client's response header timeout ends the exchange
//	0xFF 0xFF  a 0xFF byte
type script struct {
	steps []step
	hang  bool
	// data is every byte written, in order; end is how the connection
	// ends (stepClose, stepReset, or 0 for open).
	data []byte
	end  stepKind
}

type stepKind byte

const (
	stepWrite stepKind = iota + 1
	stepDrip
	stepLater
	stepClose
	stepReset
)

type step struct {
	kind stepKind
	data []byte
}

func parseScript(in []byte, method string) script {
	var s script
	var cur []byte
	flush := func() {
		if len(cur) > 0 {
			s.steps = append(s.steps, step{kind: stepWrite, data: cur})
			s.data = append(s.data, cur...)
			cur = nil
		}
	}
parse:
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != 0xFF {
			cur = append(cur, c)
			continue
		}
		i++
		if i == len(in) {
			break
		}
		switch in[i] {
		case 0xFF:
			cur = append(cur, 0xFF)
		case 'd':
			flush()
			s.steps = append(s.steps, step{kind: stepDrip})
		case 'l':
			flush()
			// Waiting for the end of an exchange that needs the rest
			// to end would wait forever: by net/http's framing, which
			// the client must share, the answer must be whole first.
			kind := stepLater
			if _, fr := frameAnswer(method, s.data, false); fr.incomplete {
				kind = stepDrip
			}
			s.steps = append(s.steps, step{kind: kind})
		case 'c', 'r':
			flush()
			s.end = stepClose
			if in[i] == 'r' {
				s.end = stepReset
			}
			break parse
		case 'h':
			return script{hang: true}
		}
	}
	flush()
	if s.end == 0 {
		if _, fr := frameAnswer(method, s.data, false); fr.incomplete {
			// An answer that needs more bytes than the script has (a
			// body to the end of the connection, a chunk still open) is
			// ended by closing the connection, or the client would wait
			// for ever; a server that stalls is the 'h' command's.
			s.end = stepClose
		}
	}
	if s.end != 0 {
		s.steps = append(s.steps, step{kind: s.end})
	}
	return s
}

var errMore = errors.New("more bytes to come")

// moreReader reads b, then io.EOF if the connection is closed there, or
// errMore if more could come. A read that finds errMore is one a client
// would wait in: bufio reads only when what it holds is not enough.
type moreReader struct {
	b      []byte
	off    int
	closed bool
	// waited says a read found errMore. bufio.Reader.ReadLine hands out a
	// line cut by an error as a whole one, so the error itself may never
	// reach the parser.
	waited bool
}

func (r *moreReader) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		if r.closed {
			return 0, io.EOF
		}
		r.waited = true
		return 0, errMore
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// framing is how net/http frames a script's bytes as the answer to a
// request: incomplete, the answer needs more bytes; else clean says a
// kept-alive connection is left with nothing unread and open.
type framing struct {
	incomplete bool
	clean      bool
}

// frameAnswer reads data as the answer to a request of method, as
// http.Transport's read loop does: informational answers, then the final
// one and its body.
func frameAnswer(method string, data []byte, closed bool) (*http.Response, framing) {
	r := &moreReader{b: data, closed: closed}
	br := bufio.NewReader(r)
	req := &http.Request{Method: method}
	var res *http.Response
	var err error
	for {
		res, err = http.ReadResponse(br, req)
		if err != nil || !informational(res.StatusCode) || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err != nil || r.waited {
		return nil, framing{incomplete: r.waited}
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return res, framing{}
	}
	_, err = io.Copy(io.Discard, res.Body)
	if r.waited {
		return res, framing{incomplete: true}
	}
	unread := len(data) - r.off + br.Buffered()
	return res, framing{clean: err == nil && !res.Close && unread == 0 && !closed}
}

// diffGuard bounds every wait of the harness; reaching it is a hang,
// reported as a failure.
const diffGuard = 20 * time.Second

// diffHeaderTimeout is the response header timeout for a script that sends
// nothing. Any value works, since that backend never answers; the other
// requests have none, so a loaded machine cannot time them out.
const diffHeaderTimeout = 20 * time.Millisecond

// exchangeResult is what the proxy would relay of one exchange.
type exchangeResult struct {
	Class         string
	Status        string
	Header        http.Header
	ContentLength int64
	Chunked       bool
	Body          string
	BodyClass     string
	Trailer       http.Header
	Informational []string
}

// runResult is one mode's run of an input.
type runResult struct {
	Exchanges [2]exchangeResult
	// Served is the requests the backend read, each with the number of
	// the connection it came on.
	Served   []string
	Accepted int
}

// diffClass is an error's class, as the proxy acts on it: StatusFor's
// answer, and isReset, which decides a retry on another server.
func diffClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case err == errUnsolicited101:
		return "protocol error"
	case StatusFor(err) == http.StatusGatewayTimeout:
		return "timeout"
	case StatusFor(err) != http.StatusBadGateway:
		return fmt.Sprintf("status %d", StatusFor(err))
	case isReset(err):
		return "upstream closed"
	}
	return "protocol error"
}

// diffBackend is the raw server of one run: it reads requests on every
// connection it accepts and plays the script of the request's number.
type diffBackend struct {
	t       *testing.T
	ln      net.Listener
	scripts [2]script
	methods [2]string
	// exDone[i] is closed when the client is done with exchange i;
	// played[i] when the backend has played script i (or began a hang).
	exDone, played [2]chan struct{}
	wg             sync.WaitGroup

	// mu guards the fields below.
	mu       sync.Mutex
	clients  map[string]*net.TCPConn // the client's side, by its address
	conns    []*backendConn
	served   []string
	servedOn [2]*backendConn
	failure  string
}

type backendConn struct {
	c    *net.TCPConn
	n    int
	peer string
	// sent counts the bytes written; closed says the backend ended the
	// connection. Only the connection's goroutine writes them, and the
	// harness reads them after played.
	sent   int
	closed bool
}

func newDiffBackend(t *testing.T, scripts [2]script, reqs [2]requestSpec) *diffBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &diffBackend{t: t, ln: ln, scripts: scripts, clients: make(map[string]*net.TCPConn)}
	for i := range b.exDone {
		b.exDone[i] = make(chan struct{})
		b.played[i] = make(chan struct{})
		b.methods[i] = reqs[i].method
	}
	b.wg.Add(1)
	go b.accept()
	return b
}

func (b *diffBackend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		bc := &backendConn{c: c.(*net.TCPConn), n: len(b.conns), peer: c.RemoteAddr().String()}
		b.conns = append(b.conns, bc)
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(bc)
	}
}

func (b *diffBackend) fail(format string, args ...any) {
	b.mu.Lock()
	if b.failure == "" {
		b.failure = fmt.Sprintf(format, args...)
	}
	b.mu.Unlock()
}

func (b *diffBackend) serve(bc *backendConn) {
	defer b.wg.Done()
	defer bc.c.Close()
	br := bufio.NewReader(bc.c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		b.mu.Lock()
		k := len(b.served)
		b.served = append(b.served, fmt.Sprintf("conn %d: %s %s %v len %d te %v body %q",
			bc.n, req.Method, req.RequestURI, req.Header, req.ContentLength, req.TransferEncoding, body))
		if k < 2 {
			b.servedOn[k] = bc
		}
		b.mu.Unlock()
		if k >= 2 {
			// A request the client sent again on a new connection: both
			// modes must have sent it, and it gets a plain answer.
			n, _ := io.WriteString(bc.c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nretry")
			bc.sent += n
			continue
		}
		done := b.play(bc, k)
		close(b.played[k])
		if done {
			return
		}
	}
}

// play runs script k on bc, and reports whether it ended the connection.
// A hang plays nothing: the connection stays open, read for a next
// request, until the client closes it.
func (b *diffBackend) play(bc *backendConn, k int) bool {
	for _, s := range b.scripts[k].steps {
		switch s.kind {
		case stepWrite:
			n, err := bc.c.Write(s.data)
			bc.sent += n
			if err != nil {
				// The client gave up on the exchange and closed.
				bc.closed = true
				return true
			}
		case stepDrip:
			b.waitConsumed(bc, k)
		case stepLater:
			select {
			case <-b.exDone[k]:
			case <-time.After(diffGuard):
				b.fail("exchange %d did not end before its later write", k+1)
			}
		case stepClose:
			bc.closed = true
			return true
		case stepReset:
			// Unsent bytes would go with the reset: the client must have
			// them all first, as a server's reset comes after its writes.
			b.waitArrived(bc, k)
			bc.c.SetLinger(0)
			bc.closed = true
			return true
		}
	}
	return false
}

// clientOf is the client's side of bc, once its dial has returned.
func (b *diffBackend) clientOf(bc *backendConn) *net.TCPConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clients[bc.peer]
}

// tcpEstablished is Linux's TCP_ESTABLISHED, the state TCP_INFO reports
// until the peer's FIN or RST comes.
const tcpEstablished = 1

// sockState is a look at the client's side of a connection.
type sockState struct {
	closed   bool // the client closed it
	received uint64
	unread   int
	state    uint8 // TCP state, as TCP_INFO says
}

func look(c *net.TCPConn) sockState {
	if c == nil {
		return sockState{}
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return sockState{closed: true}
	}
	var s sockState
	cerr := raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			s.received, s.state = info.Bytes_received, info.State
		}
		s.unread, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	if cerr != nil {
		return sockState{closed: true}
	}
	return s
}

// poll waits until cond holds, or the guard; it reports whether cond held.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(diffGuard)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
	return true
}

// waitConsumed waits until the client has read every byte written on bc,
// or is done with exchange k: the next write is then a segment of its own,
// read by a read of its own.
func (b *diffBackend) waitConsumed(bc *backendConn, k int) {
	ok := poll(func() bool {
		select {
		case <-b.exDone[k]:
			return true
		default:
		}
		s := look(b.clientOf(bc))
		return s.closed || s.received >= uint64(bc.sent) && s.unread == 0
	})
	if !ok {
		b.fail("the client did not read a drip of answer %d", k+1)
	}
}

// waitArrived waits until every byte written on bc is in the client's
// socket, or the client closed it.
func (b *diffBackend) waitArrived(bc *backendConn, k int) {
	if !poll(func() bool {
		s := look(b.clientOf(bc))
		return s.closed || s.received >= uint64(bc.sent)
	}) {
		b.fail("answer %d did not reach the client", k+1)
	}
}

// dial is the transports' dial: a plain TCP connection, returned as it is
// (our client reads its descriptor and probes it), noted by its address
// for the backend's looks.
func (b *diffBackend) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.clients[c.LocalAddr().String()] = c.(*net.TCPConn)
	b.mu.Unlock()
	return c, nil
}

func (b *diffBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, bc := range b.conns {
		bc.c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// settle waits, before the second request, until the first request's
// connection is in a state both implementations read the same way.
// net/http watches an idle connection from its read loop, which closes it
// when the server closed it or sent bytes outside any answer; until that
// goroutine has run, a request may take the connection and read those
// bytes as its own answer, or fail on the close where our client, which
// probes a pooled connection before reusing it, dials a new one. That
// window is net/http's (docs/security.md, "stray bytes"), a matter of
// scheduling, so the harness closes it: with net/http on the first
// request, whenever the connection is not left clean (by net/http's own
// framing of what the backend sent) it waits for the client to close it.
// With our client, which reads nothing of an idle connection, it waits
// for every byte, and the close or reset, to be in the client's socket,
// where the probe finds them.
func (b *diffBackend) settle(t *testing.T, firstOurs bool) {
	select {
	case <-b.played[0]:
	case <-time.After(diffGuard):
		t.Fatalf("the backend did not play the first script")
	}
	b.mu.Lock()
	bc := b.servedOn[0]
	b.mu.Unlock()
	if bc == nil {
		return
	}
	sc := b.scripts[0]
	c := b.clientOf(bc)
	var ok bool
	if firstOurs {
		ok = poll(func() bool {
			s := look(c)
			return s.closed || s.received >= uint64(bc.sent) &&
				(!bc.closed || s.state != tcpEstablished)
		})
	} else {
		_, fr := frameAnswer(b.methods[0], sc.data, sc.end != 0)
		if fr.clean && !sc.hang {
			return
		}
		ok = poll(func() bool { return look(c).closed })
	}
	if !ok {
		t.Fatalf("the first connection did not settle (our client: %v)", firstOurs)
	}
}

// runDifferential plays an input in one mode: fast, through our client
// where it takes the request; else through http.Transport alone.
func runDifferential(t *testing.T, fast bool, reqs [2]requestSpec, scripts [2]script) runResult {
	b := newDiffBackend(t, scripts, reqs)
	defer b.close()
	tr := NewTransport(Timeouts{Connect: diffGuard, IdleConnection: time.Minute}, TransportOptions{NetHTTPOnly: !fast})
	defer CloseIdleConnections(tr)
	tr.DialContext = b.dial
	var c *client
	if fast {
		v, ok := clients.Load(weak.Make(tr))
		if !ok {
			t.Fatal("no client registered on a fast-path transport")
		}
		c = v.(*client)
		c.dial = b.dial
	}
	u, _ := url.Parse("http://" + b.ln.Addr().String())
	reg := upstream.NewRegistry()
	defer reg.Close()
	pool := upstream.NewPool("diff", []*upstream.Server{{Name: "s1", URL: u, Weight: 1, State: reg.State("s1")}})
	defer pool.Close()
	up := &Upstream{Name: "diff", Pool: pool, Picker: first{}, Transport: tr}

	var rr runResult
	for i, spec := range reqs {
		if i == 1 {
			b.settle(t, reqs[0].ours(fast))
		}
		// The response header timeout, for this request only: requests
		// are sent one after the other.
		timeout := time.Duration(0)
		if scripts[i].hang {
			timeout = diffHeaderTimeout
		}
		tr.ResponseHeaderTimeout = timeout
		if c != nil {
			c.headerTimeout = timeout
		}
		done := make(chan exchangeResult, 1)
		go func() { done <- exchangeOnce(up, spec, u.Host) }()
		select {
		case rr.Exchanges[i] = <-done:
		case <-time.After(diffGuard):
			t.Fatalf("fast path %v: exchange %d did not end", fast, i+1)
		}
		close(b.exDone[i])
	}
	// The backend has played every script (it reads each request
	// before it answers, and a hang plays at once, however soon the
	// client gave up) before the harness looks at what it saw.
	for i := range b.played {
		select {
		case <-b.played[i]:
		case <-time.After(diffGuard):
			t.Fatalf("fast path %v: the backend did not play script %d", fast, i+1)
		}
	}
	b.mu.Lock()
	rr.Served = b.served
	rr.Accepted = len(b.conns)
	failure := b.failure
	b.mu.Unlock()
	if failure != "" {
		t.Fatalf("fast path %v: %s", fast, failure)
	}
	return rr
}

// exchangeOnce sends one request through up and reads the answer as the
// relay would.
func exchangeOnce(up *Upstream, spec requestSpec, host string) exchangeResult {
	var r exchangeResult
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		r.Informational = append(r.Informational, fmt.Sprintf("%d %v", code, relayed(http.Header(h))))
		mu.Unlock()
		return nil
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	res, err := up.RoundTrip(spec.newRequest(ctx, host))
	if err == nil && res.StatusCode == http.StatusSwitchingProtocols {
		// A switch nobody asked for: the route refuses it (exchange),
		// as our client refuses it itself (errUnsolicited101).
		res.Body.Close()
		res, err = nil, errUnsolicited101
	}
	// A status below 100 is compared as both clients return it, a final
	// answer; the route then refuses it either way
	// (TestRelayRefusesAStatusBelow100).
	mu.Lock()
	defer mu.Unlock()
	r.Class = diffClass(err)
	if err != nil {
		return r
	}
	r.Status = res.Status
	r.Header = relayed(res.Header)
	r.ContentLength = res.ContentLength
	r.Chunked = len(res.TransferEncoding) > 0
	body, berr := io.ReadAll(res.Body)
	res.Body.Close()
	r.Body, r.BodyClass = string(body), diffClass(berr)
	if len(res.Trailer) > 0 {
		r.Trailer = res.Trailer
	}
	return r
}

// relayed is the header the relay sends on of h.
func relayed(h http.Header) http.Header {
	out := http.Header{}
	copyResponseHeader(out, h)
	return out
}

// compareRuns holds the fast run to the net/http run, with the differences
// that are by design.
func compareRuns(t *testing.T, reqs [2]requestSpec, scripts [2]script, want, got runResult) {
	t.Helper()
	for i := range want.Exchanges {
		if !reqs[i].ours(true) || len(want.Exchanges[i].Informational) <= max1xx {
			continue
		}
		// Our client relays max1xx informational answers and then gives
		// the exchange up as a protocol error (errTooMany1xx), closing
		// the connection; http.Transport, given a Got1xxResponse hook,
		// takes any number until its response header timeout. RFC 9110
		// §15.2 sets no bound: ours is deliberately stricter, so that a
		// server streaming 1xx cannot hold a request with no timeout set.
		want.Exchanges[i] = exchangeResult{Class: "protocol error", Informational: want.Exchanges[i].Informational[:max1xx]}
		if i == 0 {
			want.Served, got.Served = connless(want.Served), connless(got.Served)
			want.Accepted, got.Accepted = 0, 0
		}
	}
	if reqs[0].ours(true) != reqs[1].ours(true) {
		// A request with a body goes to http.Transport in both modes
		// (handles), and the transport keeps connections apart from our
		// client's: in the fast mode the second request cannot find the
		// first one's connection, which net/http may reuse.
		want.Served, got.Served = connless(want.Served), connless(got.Served)
		want.Accepted, got.Accepted = 0, 0
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("requests %+v, scripts %q / %q:\nfast path differs from net/http (-net/http +fast):\n%s",
			reqs, scripts[0].data, scripts[1].data, d)
	}
}

// connless drops the connection numbers of served requests, and sorts
// them: a retried request's order is the same, but on another connection.
func connless(served []string) []string {
	out := make([]string, len(served))
	for i, s := range served {
		_, out[i], _ = strings.Cut(s, ": ")
	}
	sort.Strings(out)
	return out
}
