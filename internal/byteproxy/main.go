// Command byteproxy is a measuring stick, not a proxy: the least a Go
// program can do per request of the peer benchmark. Each client
// connection gets a goroutine and an upstream connection of its own
// (round robin over the harness's two backends), and bytes go through as
// they are, with no HTTP semantics beyond finding the end of a request
// head and framing an answer by its Content-Length; it yields before
// reads as the proxy does. What the proxy spends above it is the cost of
// its HTTP layer rather than of Go's runtime and system calls (see
// docs/performance.md).
//
// With -h1 it serves through package h1's connection loop and its Direct
// lane instead: heads are forwarded as they came, plus X-Forwarded-For and
// X-Forwarded-Proto, over a shared pool of upstream connections, and
// answers are relayed whole. That is the floor of a head-to-head path
// built on h1, which the proxy's own direct path will add its routing,
// balancing, metrics and failure handling to.
//
//	go build -o byteproxy ./internal/byteproxy
//	scripts/cpu-split.sh 3 nginx ./byteproxy ./proxy-server
package main

import (
	"bytes"
	"flag"
	"log"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "address to listen on")
	backends := flag.String("backends", "127.0.0.1:19001,127.0.0.1:19002", "comma-separated backend addresses")
	viaH1 := flag.Bool("h1", false, "serve through package h1's Direct lane, with a shared upstream pool")
	flag.String("config", "", "ignored, so that scripts/cpu-split.sh can start it as it starts the proxy")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *viaH1 {
		log.Fatal(serveH1(ln, strings.Split(*backends, ",")))
	}
	log.Fatal(serveAll(ln, strings.Split(*backends, ",")))
}

func serveAll(ln net.Listener, backends []string) error {
	var next atomic.Uint32
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serve(c, backends[next.Add(1)%uint32(len(backends))])
	}
}

// serve relays requests that come whole in one read, without a body,
// each answered in full before the next: what wrk sends.
func serve(c net.Conn, backend string) {
	defer c.Close()
	up, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer up.Close()
	in := make([]byte, 4096)
	out := make([]byte, 64<<10)
	for {
		n, err := c.Read(in)
		if err != nil || !bytes.Contains(in[:n], []byte("\r\n\r\n")) {
			return
		}
		if _, err := up.Write(in[:n]); err != nil {
			return
		}
		runtime.Gosched()
		m := 0
		for {
			k, err := up.Read(out[m:])
			if err != nil {
				return
			}
			m += k
			if end, ok := length(out[:m]); ok && m >= end {
				break
			}
			if m == len(out) {
				return
			}
		}
		if _, err := c.Write(out[:m]); err != nil {
			return
		}
		runtime.Gosched()
	}
}

// length is the length of the answer whose head is whole in b, as its
// Content-Length gives it.
func length(b []byte) (int, bool) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return 0, false
	}
	for _, line := range bytes.Split(b[:i], []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Content-Length")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
			return i + 4 + n, err == nil
		}
	}
	return 0, false
}
