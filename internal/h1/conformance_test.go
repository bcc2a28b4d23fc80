package h1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// How long an exchange waits for the server: for the first byte, and then
// for more bytes before it takes a quiet connection as done answering.
// Every exchange runs at once, so the quiet wait is paid about once; it is
// long enough for a loaded machine under the race detector, where a
// pipelined answer was seen to come more than 500ms after the one before.
const (
	firstByteWait = 10 * time.Second
	quietWait     = 2 * time.Second
)

// How a connection ended, as the client saw it.
const (
	endOpen   = "left open"
	endClosed = "closed"
	endReset  = "reset"
)

// conformanceCase is a raw request and the handler that answers it.
type conformanceCase struct {
	name    string
	req     string
	handler http.HandlerFunc
}

// unmatched are the cases h1 cannot answer as net/http does, by name, with
// the reason; their comparison is skipped.
var unmatched = map[string]string{
	"MaxBytesReader over its limit": "MaxBytesReader tells net/http's response of the excess through an unexported method, " +
		"and net/http then adds Connection: close and closes; h1 cannot hear of it, and drops the rest of the body " +
		"(or closes, past 256 KiB) to serve the next request as usual",
}

const get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

// noWriteTo hides the WriteTo of a reader, so io.Copy to a response goes
// through its ReadFrom.
type noWriteTo struct{ io.Reader }

func writeString(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) }
}

// writeBytes writes s with Write, which net/http buffers differently from
// WriteString.
func writeBytes(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(s)) }
}

// shutdowns holds the Shutdown of each server of an exchange, by its
// http.Server, for shutDown.
var shutdowns sync.Map

// shutDown starts the shutdown of the server serving r, and returns once
// keep-alive has ended (Shutdown with a done context returns then).
func shutDown(r *http.Request) {
	hs := r.Context().Value(http.ServerContextKey).(*http.Server)
	f, _ := shutdowns.Load(hs)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.(func(context.Context) error)(ctx)
}

// echo answers with what the handler saw of the request and its body.
func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(w, "%s %s %s host=%q len=%d close=%v te=%q\n", r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength, r.Close, r.TransferEncoding)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %q\n", k, r.Header[k])
	}
	fmt.Fprintf(w, "body=%q err=%v\n", b, err)
}

var conformanceCases = []conformanceCase{
	{"empty", get, func(w http.ResponseWriter, r *http.Request) {}},
	{"small body", get, writeString("hello, world")},
	{"body at the chunking limit", get, writeString(strings.Repeat("a", 2048))},
	{"body over the chunking limit", get, writeString(strings.Repeat("a", 2049))},
	{"large body chunked", get, writeString(strings.Repeat("0123456789", 1000))},
	{"large body in one Write", get, writeBytes(strings.Repeat("0123456789", 1000))},
	{"body over the chunking limit in one Write", get, writeBytes(strings.Repeat("a", 2049))},
	{"many small writes chunked", get, func(w http.ResponseWriter, r *http.Request) {
		for range 700 {
			w.Write([]byte("0123456789"))
		}
	}},
	{"many small strings chunked", get, func(w http.ResponseWriter, r *http.Request) {
		for range 700 {
			io.WriteString(w, "0123456789")
		}
	}},
	{"writes across the chunking limit", get, func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			w.Write(bytes.Repeat([]byte("x"), 1000))
		}
	}},
	{"sniffed from the first buffered chunk", get, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("t"), 100))
		w.Write(bytes.Repeat([]byte("\x00"), 3000))
	}},
	{"writes after a commit", get, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("a"), 3000))
		for range 10 {
			w.Write([]byte("bbb"))
		}
		w.Write(bytes.Repeat([]byte("c"), 5000))
		io.WriteString(w, strings.Repeat("0123456789", 500))
		w.Write(bytes.Repeat([]byte("x"), 2048))
	}},
	{"io.Copy from a plain reader", get, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, noWriteTo{strings.NewReader(strings.Repeat("<p>abc</p>", 600))})
	}},
	{"io.Copy with a Content-Length", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "6000")
		io.Copy(w, noWriteTo{strings.NewReader(strings.Repeat("0123456789", 600))})
	}},
	{"io.Copy of a short reader", get, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, noWriteTo{strings.NewReader("short")})
	}},
	{"io.Copy after a write", get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>")
		io.Copy(w, noWriteTo{strings.NewReader(strings.Repeat("0123456789", 600))})
	}},
	{"io.Copy with HEAD", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, noWriteTo{strings.NewReader(strings.Repeat("0123456789", 600))})
	}},
	{"explicit Content-Length", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "hello")
	}},
	{"explicit Content-Length of a large body", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000")
		io.WriteString(w, strings.Repeat("0123456789", 1000))
	}},
	{"more than the Content-Length", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, err1 := io.WriteString(w, "hel")
		_, err2 := io.WriteString(w, "lo world")
		if err1 != nil || !errors.Is(err2, http.ErrContentLength) {
			panic(fmt.Sprintf("writes past the Content-Length: %v, %v", err1, err2))
		}
	}},
	{"less than the Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
	}},
	{"HEAD without a body", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get, func(w http.ResponseWriter, r *http.Request) {}},
	{"HEAD with a body written", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get, writeString("<html>hello</html>")},
	{"HEAD with a large body written", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get, writeString(strings.Repeat("a", 5000))},
	{"HEAD with a Content-Length", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
	}},
	{"HEAD with an invalid Content-Length", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "lots")
		io.WriteString(w, "hello")
	}},
	{"204 with a body", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
			panic(fmt.Sprintf("write to a 204: %v", err))
		}
	}},
	{"304 with Content-Type and Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", "100")
		w.Header().Set("ETag", `"abc"`)
		w.WriteHeader(http.StatusNotModified)
		io.WriteString(w, "x")
	}},
	{"103 Early Hints", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Link", "</style.css>; rel=preload; as=style")
		w.Header().Set("Content-Length", "3")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Content-Length")
		w.Header().Del("Transfer-Encoding")
		w.Header().Add("Link", "</app.js>; rel=preload; as=script")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "<!DOCTYPE html><title>x</title>")
	}},
	{"100 Continue by hand", get, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusContinue)
		io.WriteString(w, "ok")
	}},
	{"101 without a hijack", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		io.WriteString(w, "ok")
	}},
	{"101 with Upgrade to a request that closes", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "x-proto")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
	}},
	{"HTML sniffed", get, writeString("<html><body><h1>hi</h1></body></html>")},
	{"binary sniffed", get, writeString("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")},
	{"Content-Encoding without Content-Type", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(w, "<html>not really gzip</html>")
	}},
	{"empty Content-Encoding", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "")
		io.WriteString(w, "<html>sniffed</html>")
	}},
	{"Content-Type set empty", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html>not sniffed</html>")
	}},
	{"declared trailers", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Zeta, x-alpha")
		w.Header().Add("Trailer", "Content-Length, X-Beta")
		io.WriteString(w, "body")
		w.Header().Set("X-Zeta", "z")
		w.Header().Set("X-Alpha", "a\r\nb")
		w.Header().Set("X-Beta", "b")
		w.Header().Set("Content-Length", "99")
	}},
	{"prefix trailers", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(http.TrailerPrefix+"X-Early", "announced")
		io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"X-Early", "final")
		w.Header().Set(http.TrailerPrefix+"X-Zz", "1")
		w.Header().Set(http.TrailerPrefix+"X-Aa", "2")
		w.Header().Set(http.TrailerPrefix+"x-lower", "3")
		w.Header().Set(http.TrailerPrefix+"Bad Name", "4")
	}},
	{"prefix trailers only after the header", get + get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"X-Late", "1")
	}},
	{"prefix trailers after a chunked header", get + get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("b", 3000))
		w.Header().Set(http.TrailerPrefix+"X-Late", "1")
		w.Header().Set(http.TrailerPrefix+"A-Late", "2")
	}},
	{"declared and prefix trailers of one name", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Both, X-Both")
		io.WriteString(w, "body")
		w.Header().Set("X-Both", "declared")
		w.Header().Set(http.TrailerPrefix+"X-Both", "prefixed")
		w.Header().Set(http.TrailerPrefix+"X-Aaa", "prefixed")
	}},
	{"trailers with a Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-T")
		w.Header().Set("Content-Length", "4")
		io.WriteString(w, "body")
		w.Header().Set("X-T", "t")
	}},
	{"Flush before the end", get + get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "world")
	}},
	{"Flush of nothing", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		io.WriteString(w, "<html>late</html>")
	}},
	{"Flush with a Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "11")
		io.WriteString(w, "hello ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "world")
	}},
	{"request Connection: close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + get, writeString("bye")},
	{"request Connection: close second", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: Close\r\n\r\n" + get, echo},
	{"request Connection: close after a space", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive close\r\n\r\n" + get, echo},
	{"request Connection: closed", "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, x\r\n\r\n" + get, echo},
	{"request Connection: close with an unread body", "POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", writeString("bye")},
	{"handler Connection: close", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "bye")
	}},
	{"handler Connection: keep-alive, close", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive, close")
		io.WriteString(w, "bye")
	}},
	{"handler Connection: close with an unread body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}},
	{"Transfer-Encoding: identity", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "identity")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "streamed until close")
	}},
	{"Transfer-Encoding: identity with a Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "identity")
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}},
	{"Transfer-Encoding: chunked set by the handler", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}},
	{"Transfer-Encoding: chunked with a Content-Length, written past it", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello world")
	}},
	{"Transfer-Encoding: gzip set by the handler", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "gzip")
		w.Header().Set("Vary", "Accept-Encoding")
		io.WriteString(w, "hello")
	}},
	{"invalid Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "five")
		w.Header().Set("X-After", "1")
		io.WriteString(w, "hello")
	}},
	{"negative Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "-5")
		io.WriteString(w, "hello")
	}},
	{"empty Content-Length", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{""}
		io.WriteString(w, "hello")
	}},
	{"header values with CR and LF", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Split", "a\r\nInjected: yes")
		w.Header().Set("X-Lf", "a\nb\rc")
		w.Header().Set("X-Padded", " \t padded \r\n")
		io.WriteString(w, "ok")
	}},
	{"header keys to sort", get, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Zebra", "z")
		h.Set("Apple", "a")
		h.Add("Mango", "m1")
		h.Add("Mango", "m2")
		h["x-raw-lower"] = []string{"l"}
		h["X-Upper"] = []string{"u"}
		h["Bad Key"] = []string{"dropped"}
		h["Bad:Key"] = []string{"dropped"}
		h["Empty-Values"] = []string{}
		h.Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		h.Set("Content-Length", "2")
		h.Set("Connection", "keep-alive")
		io.WriteString(w, "ok")
	}},
	{"Date removed", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		io.WriteString(w, "ok")
	}},
	{"small unread body then a pipelined GET", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" + get, writeString("answer")},
	{"small body read then a pipelined GET", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" + get, echo},
	{"small body half read then a pipelined GET", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" + get, func(w http.ResponseWriter, r *http.Request) {
		var b [5]byte
		n, _ := io.ReadFull(r.Body, b[:])
		w.Write(b[:n])
	}},
	{"small body closed unread then a pipelined GET", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" + get, func(w http.ResponseWriter, r *http.Request) {
		r.Body.Close()
		io.WriteString(w, "closed")
	}},
	{"300 KiB unread body", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 307200\r\n\r\n" + strings.Repeat("x", 300<<10) + get, writeString("too big")},
	{"300 KiB unread body with Connection: close from the handler", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 307200\r\n\r\n" + strings.Repeat("x", 300<<10) + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "too big")
	}},
	{"300 KiB body closed unread", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 307200\r\n\r\n" + strings.Repeat("x", 300<<10) + get, func(w http.ResponseWriter, r *http.Request) {
		r.Body.Close()
		_, err := r.Body.Read(make([]byte, 1))
		fmt.Fprintf(w, "read after close: %v", err)
	}},
	{"256 KiB unread body", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 262144\r\n\r\n" + strings.Repeat("x", 256<<10) + get, writeString("too big")},
	{"256 KiB unread body closed", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 262144\r\n\r\n" + strings.Repeat("x", 256<<10) + get, func(w http.ResponseWriter, r *http.Request) {
		r.Body.Close()
	}},
	{"just under 256 KiB unread body", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 262143\r\n\r\n" + strings.Repeat("x", 256<<10-1) + get, writeString("dropped")},
	{"300 KiB body read", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 307200\r\n\r\n" + strings.Repeat("x", 300<<10) + get, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d %v", n, err)
	}},
	{"MaxBytesReader over its limit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100) + get, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			return
		}
		_, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 10))
		io.WriteString(w, err.Error())
	}},
	{"shutdown during the handler", get + get, func(w http.ResponseWriter, r *http.Request) {
		shutDown(r)
		io.WriteString(w, "bye")
	}},
	{"shutdown with the handler's Connection: close", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("A", "1")
		shutDown(r)
		io.WriteString(w, "bye")
	}},
	{"two pipelined GETs", "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", echo},
	{"request echoed", "GET /p/a%20th?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nuser-agent: t\r\nX-Multi: 1\r\nx-multi: 2\r\nPragma: no-cache\r\n\r\n", echo},
	{"status without text", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(599)
		io.WriteString(w, "odd")
	}},
	{"status 999", get, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(999) }},
	{"WriteHeader twice", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "created")
	}},
	{"ErrAbortHandler before a write", get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "1")
		panic(http.ErrAbortHandler)
	}},
	{"ErrAbortHandler after a small write", get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	}},
	{"ErrAbortHandler after a chunk", get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", 3000))
		io.WriteString(w, "buffered")
		panic(http.ErrAbortHandler)
	}},
	{"ErrAbortHandler after a Flush", get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "flushed")
		w.(http.Flusher).Flush()
		io.WriteString(w, "not flushed")
		panic(http.ErrAbortHandler)
	}},
	{"header changed after WriteHeader", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "before")
		w.WriteHeader(http.StatusOK)
		w.Header().Set("X-A", "after")
		w.Header().Set("X-B", "after")
		w.Header().Set("Content-Type", "text/x-after")
		w.Header().Set("Connection", "close")
		io.WriteString(w, "<html>body</html>")
	}},
	{"header first used after WriteHeader", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Header().Set("Content-Type", "text/x-after")
		w.Header().Set("X-B", "after")
		io.WriteString(w, "<html>body</html>")
	}},
	{"framing set only after WriteHeader", get + get, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Header().Set("Content-Length", "4")
		w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Connection", "close")
		io.WriteString(w, "body")
	}},

	// Handed to net/http by the fast path.
	{"chunked request body", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get, echo},
	{"chunked request body and io.Copy", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, noWriteTo{strings.NewReader(strings.Repeat("<p>abc</p>", 600))})
	}},
	{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: h\r\n\r\n", writeString("old")},
	{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "old")
	}},
	{"Expect: 100-continue", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + get, echo},
	{"bare LF", "GET / HTTP/1.1\nHost: h\n\n" + get, echo},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n", echo},
	{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", echo},
	{"no Host", "GET / HTTP/1.1\r\n\r\n", echo},
	{"absolute target", "GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n", echo},
	{"fast then handed over", get + "GET / HTTP/1.0\r\n\r\n", echo},
}

// TestResponsesMatchNetHTTP sends the same bytes to the fast path and to a
// net/http server with the same handler, and requires the same bytes back,
// Date values aside, and the connection to end the same way.
func TestResponsesMatchNetHTTP(t *testing.T) {
	// Every exchange at once: most of each is the wait for a quiet
	// connection, which t.Parallel would serialize by GOMAXPROCS.
	type result struct {
		got []byte
		end string
		err error
	}
	results := make([][2]result, len(conformanceCases))
	var wg sync.WaitGroup
	for i, tc := range conformanceCases {
		for j, fast := range []bool{true, false} {
			wg.Go(func() {
				r := &results[i][j]
				r.got, r.end, r.err = exchange(tc, fast)
			})
		}
	}
	wg.Wait()

	for i, tc := range conformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			if why := unmatched[tc.name]; why != "" {
				t.Skip(why)
			}
			fast, std := results[i][0], results[i][1]
			if fast.err != nil || std.err != nil {
				t.Fatalf("h1: %v; net/http: %v", fast.err, std.err)
			}
			if !bytes.Equal(fast.got, std.got) {
				t.Errorf("h1 answered\n%s\nnet/http answered\n%s", quoteLines(fast.got), quoteLines(std.got))
			}
			if fast.end != std.end {
				t.Errorf("h1 %s the connection, net/http %s it", fast.end, std.end)
			}
		})
	}
}

var datePattern = regexp.MustCompile(`(?m)^Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r$`)

// exchange serves tc.handler on a new server, h1's or net/http's, sends
// tc.req on a new connection and returns what came back, with the Date
// values of today replaced, and how the connection ended.
func exchange(tc conformanceCase, fast bool) (got []byte, end string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	hs := &http.Server{Handler: tc.handler, ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan error, 1)
	stop := hs.Close
	if fast {
		s := New(hs)
		stop = s.Close
		shutdowns.Store(hs, s.Shutdown)
		go func() { served <- s.Serve(ln) }()
	} else {
		shutdowns.Store(hs, hs.Shutdown)
		go func() { served <- hs.Serve(ln) }()
	}
	defer func() {
		shutdowns.Delete(hs)
		stop()
		if serr := <-served; serr != http.ErrServerClosed && err == nil {
			err = fmt.Errorf("Serve: %v", serr)
		}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, "", err
	}
	// The request goes out while the answer is read: a server may answer
	// and close before it has read all of a large request.
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.Write([]byte(tc.req))
	}()
	defer func() {
		c.Close()
		<-written
	}()

	buf := make([]byte, 64<<10)
	wait := firstByteWait
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if n > 0 {
			wait = quietWait
		}
		var ne net.Error
		switch {
		case err == nil:
			continue
		case errors.As(err, &ne) && ne.Timeout():
			return normalizeDates(got), endOpen, nil
		case err == io.EOF:
			return normalizeDates(got), endClosed, nil
		case errors.Is(err, syscall.ECONNRESET):
			return normalizeDates(got), endReset, nil
		default:
			return got, "", fmt.Errorf("read: %v", err)
		}
	}
}

func normalizeDates(b []byte) []byte {
	return datePattern.ReplaceAll(b, []byte("Date: <now>\r"))
}

// quoteLines shows a byte stream a line to a line, escaped, shortening long
// runs of one byte.
func quoteLines(b []byte) string {
	var sb strings.Builder
	for line := range strings.SplitAfterSeq(string(b), "\n") {
		q := fmt.Sprintf("%q", line)
		for _, c := range []string{"a", "b", "c", "x", "t", "0123456789", "<p>abc</p>", `\x00`} {
			q = regexp.MustCompile(`(`+regexp.QuoteMeta(c)+`){20,}`).ReplaceAllStringFunc(q, func(run string) string {
				return fmt.Sprintf("%s…(%d)", c, len(run)/len(c))
			})
		}
		sb.WriteString("\t" + q + "\n")
	}
	return sb.String()
}
