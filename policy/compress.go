package policy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/middleware"
)

// compress encodes answers for clients that accept it (RFC 9110 §12.5.3),
// with the first algorithm of the policy's list that the client accepts.
// It leaves alone an answer that is already encoded, marked
// Cache-Control: no-transform, partial (a Range request or a 206), without
// a body (HEAD, 204, 304), of a type not listed, or shorter than min_size:
// an answer of unknown length is held until min_size bytes have come, and
// sent as it is if it ends first. Compressible answers say Vary:
// Accept-Encoding whether encoded or not, so caches keep both.
func compress(p *config.CompressPolicy) middleware.Middleware {
	algs := p.Algorithms
	if len(algs) == 0 {
		algs = config.CompressAlgorithms
	}
	minSize := int(p.MinSize)
	if minSize == 0 {
		minSize = 1024
	}
	types := p.Types
	if len(types) == 0 {
		types = config.DefaultCompressTypes
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				next.ServeHTTP(w, r)
				return
			}
			cw := &compressWriter{writer: writer{w}, types: types, minSize: minSize}
			if r.Header.Get("Range") == "" {
				cw.alg = negotiate(r.Header["Accept-Encoding"], algs)
			}
			defer cw.finish()
			next.ServeHTTP(cw, r)
		})
	}
}

// negotiate picks the first of algs the Accept-Encoding lines accept
// with a q-value above 0, or "".
func negotiate(lines []string, algs []string) string {
	if len(lines) == 0 {
		return ""
	}
	// Per algorithm, in algs' order: 0 not listed, 1 accepted, -1
	// refused (q=0). An array, not a map: this runs for every request.
	var buf [8]int8
	state := buf[:0]
	if len(algs) > len(buf) {
		state = make([]int8, 0, len(algs))
	}
	state = state[:len(algs)]
	star := false
	for _, line := range lines {
		for elem := range strings.SplitSeq(line, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(elem), ";")
			name = strings.TrimSpace(name)
			q := 1.0
			for param := range strings.SplitSeq(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
				if strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						q = f
					}
				}
			}
			if name == "*" {
				star = q > 0
				continue
			}
			for i, a := range algs {
				if !strings.EqualFold(a, name) {
					continue
				}
				// A coding listed twice is accepted if either accepts it.
				if state[i] == 0 || q > 0 {
					state[i] = -1
					if q > 0 {
						state[i] = 1
					}
				}
			}
		}
	}
	for i, a := range algs {
		if state[i] == 1 || (state[i] == 0 && star) {
			return a
		}
	}
	return ""
}

type compressMode uint8

const (
	modeUndecided compressMode = iota
	modePass                   // as the server sent it
	modeHold                   // eligible, length unknown: holding the first bytes
	modeEncode
)

type compressWriter struct {
	writer
	alg     string
	types   []string
	minSize int
	mode    compressMode
	code    int
	held    []byte
	enc     encoder
}

func (w *compressWriter) WriteHeader(code int) {
	if w.mode != modeUndecided {
		return
	}
	if code < 200 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.code = code
	h := w.Header()
	if !typeListed(h.Get("Content-Type"), w.types) {
		w.pass()
		return
	}
	addVary(h, "Accept-Encoding")
	length := -1
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.Atoi(cl); err == nil {
			length = n
		}
	}
	switch {
	case w.alg == "", code == http.StatusNoContent, code == http.StatusNotModified,
		code == http.StatusPartialContent, h.Get("Content-Encoding") != "",
		noTransform(h["Cache-Control"]), length >= 0 && length < w.minSize:
		w.pass()
	case length >= 0:
		w.encode()
	default:
		w.mode = modeHold
	}
}

func (w *compressWriter) pass() {
	w.mode = modePass
	w.ResponseWriter.WriteHeader(w.code)
}

// encode sends the head of the encoded answer and starts the encoder.
func (w *compressWriter) encode() {
	w.mode = modeEncode
	h := w.Header()
	h.Set("Content-Encoding", w.alg)
	h.Del("Content-Length")
	// The encoded bytes are not the ones the server's ETag names.
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		h.Set("ETag", "W/"+etag)
	}
	h.Del("Accept-Ranges")
	w.ResponseWriter.WriteHeader(w.code)
	w.enc = getEncoder(w.alg, w.ResponseWriter)
}

func (w *compressWriter) Write(b []byte) (int, error) {
	if w.mode == modeUndecided {
		w.WriteHeader(http.StatusOK)
	}
	switch w.mode {
	case modeHold:
		w.held = append(w.held, b...)
		if len(w.held) >= w.minSize {
			w.encode()
			held := w.held
			w.held = nil
			if _, err := w.enc.Write(held); err != nil {
				return 0, err
			}
		}
		return len(b), nil
	case modeEncode:
		return w.enc.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends what is held or encoded so far: a stream (server-sent
// events) is encoded from its first flush, whatever its length.
func (w *compressWriter) Flush() {
	if w.mode == modeHold {
		w.encode()
		if _, err := w.enc.Write(w.held); err != nil {
			return
		}
		w.held = nil
	}
	if w.mode == modeEncode {
		if err := w.enc.Flush(); err != nil {
			return
		}
	}
	w.writer.Flush()
}

// finish ends the answer once the handler has returned.
func (w *compressWriter) finish() {
	switch w.mode {
	case modeHold:
		// It ended under min_size: as it came.
		w.mode = modePass
		w.ResponseWriter.WriteHeader(w.code)
		w.ResponseWriter.Write(w.held)
	case modeEncode:
		w.enc.Close()
		putEncoder(w.alg, w.enc)
		w.enc = nil
	}
}

func typeListed(ct string, types []string) bool {
	if ct == "" {
		return false
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	for _, t := range types {
		if strings.HasSuffix(t, "/*") {
			if strings.HasPrefix(mt, strings.TrimSuffix(t, "*")) {
				return true
			}
		} else if mt == t {
			return true
		}
	}
	return false
}

func noTransform(lines []string) bool {
	for _, l := range lines {
		for d := range strings.SplitSeq(l, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-transform") {
				return true
			}
		}
	}
	return false
}

func addVary(h http.Header, name string) {
	for _, l := range h["Vary"] {
		for v := range strings.SplitSeq(l, ",") {
			if v = strings.TrimSpace(v); v == "*" || strings.EqualFold(v, name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}

// encoder is what the three algorithms' writers share.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

// The levels trade ratio for CPU as a proxy should, in front of servers
// whose answers change: gzip 5 and brotli 4 (about nginx's and Caddy's
// choices), zstd's default, with a 1 MiB window for browsers' sake
// (RFC 8878 §3.1.1.1.2 lets decoders refuse more than 8 MiB).
var encoders = map[string]*sync.Pool{
	"gzip": {New: func() any {
		w, _ := gzip.NewWriterLevel(nil, 5)
		return w
	}},
	"br": {New: func() any { return brotliWriter{brotli.NewWriterLevel(nil, 4)} }},
	"zstd": {New: func() any {
		w, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		return zstdWriter{w}
	}},
}

func getEncoder(alg string, w io.Writer) encoder {
	e := encoders[alg].Get().(encoder)
	e.Reset(w)
	return e
}

func putEncoder(alg string, e encoder) {
	e.Reset(nil)
	encoders[alg].Put(e)
}

type brotliWriter struct{ *brotli.Writer }

func (b brotliWriter) Reset(w io.Writer) { b.Writer.Reset(w) }

type zstdWriter struct{ *zstd.Encoder }

func (z zstdWriter) Reset(w io.Writer) { z.Encoder.Reset(w) }
