package main

import (
	"bytes"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tbsphathuynh/proxy/internal/h1"
)

func serveH1(ln net.Listener, backends []string) error {
	s := h1.New(&http.Server{Handler: http.NotFoundHandler()})
	d := &direct{}
	for _, b := range backends {
		d.pools = append(d.pools, &pool{addr: b})
	}
	s.Direct = d
	return s.Serve(ln)
}

// direct forwards every body-less request head to head, round robin.
type direct struct {
	pools []*pool
	next  atomic.Uint32
}

// pool keeps idle connections to one backend.
type pool struct {
	addr string
	mu   sync.Mutex
	idle []*upConn
}

type upConn struct {
	nc      net.Conn
	out, in []byte
}

func (p *pool) get() (*upConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		uc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return uc, nil
	}
	p.mu.Unlock()
	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &upConn{nc: nc, out: make([]byte, 0, 4096), in: make([]byte, 64<<10)}, nil
}

func (p *pool) put(uc *upConn) {
	p.mu.Lock()
	p.idle = append(p.idle, uc)
	p.mu.Unlock()
}

var (
	connectionName = []byte("Connection")
	forwardedProto = []byte("\r\nX-Forwarded-Proto: http\r\n\r\n")
)

func (d *direct) ServeDirect(x *h1.Exchange) bool {
	p := d.pools[d.next.Add(1)%uint32(len(d.pools))]
	uc, err := p.get()
	if err != nil {
		return false
	}
	b := append(uc.out[:0], x.Method()...)
	b = append(b, ' ')
	b = append(b, x.Target()...)
	b = append(b, " HTTP/1.1\r\n"...)
	for i := range x.Fields() {
		name, value := x.Field(i)
		if bytes.EqualFold(name, connectionName) {
			continue
		}
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, value...)
		b = append(b, "\r\n"...)
	}
	host, _, _ := net.SplitHostPort(x.RemoteAddr())
	b = append(b, "X-Forwarded-For: "...)
	b = append(b, host...)
	b = append(b, forwardedProto...)
	uc.out = b
	if _, err := uc.nc.Write(b); err != nil {
		uc.nc.Close()
		x.Close()
		return true
	}
	runtime.Gosched()
	m := 0
	for {
		k, err := uc.nc.Read(uc.in[m:])
		if err != nil || m+k == len(uc.in) {
			uc.nc.Close()
			x.Close()
			return true
		}
		m += k
		if end, ok := length(uc.in[:m]); ok && m >= end {
			x.Write(uc.in[:end])
			break
		}
	}
	p.put(uc)
	return true
}
