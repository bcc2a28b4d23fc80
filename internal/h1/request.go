package h1

import (
	"bytes"
	"net/http"
	"net/url"
	"sync"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// reqState is everything one request on the fast path needs, borrowed from
// a pool for the request's duration so an idle connection holds none of
// it. Handlers must not keep the request, its header or its writer after
// they return, as with net/http.
type reqState struct {
	head    head
	req     http.Request
	url     url.URL
	header  http.Header
	vals    [maxFields + 1]string
	body    *body // nil without a body
	resp    response
	direct  Exchange
	handOff bool
	// built: build filled header and vals, which a request served by the
	// Direct lane leaves empty.
	built bool
}

// The header maps start small: a map of at most 8 keys is one group of
// Go's maps, which a request fills, walks and clears faster than a bigger
// table (about 130 ns per map and request); a head with more keys grows
// it, and the pooled state keeps the grown map.
var states = sync.Pool{New: func() any {
	return &reqState{header: make(http.Header, 8), resp: response{header: make(http.Header, 8)}}
}}

func getState() *reqState { return states.Get().(*reqState) }

func putState(st *reqState) {
	if st.built {
		clear(st.header)
		clear(st.vals[:])
		st.built = false
	}
	clear(st.resp.header)
	st.req = http.Request{}
	st.url = url.URL{}
	st.body = nil
	st.resp.clean()
	st.handOff = false
	states.Put(st)
}

// build fills st.req from buf, a head that parseHead accepted into
// st.head, as net/http's server would: canonical header keys, Host moved
// out of the header, Cache-Control added for Pragma: no-cache, the target
// parsed as url.ParseRequestURI does. The request starts as a copy of
// proto, which carries the context. Body, ContentLength, Close and
// RemoteAddr are left to the caller. It reports false when net/http would
// reject the target.
func (st *reqState) build(buf []byte, proto *http.Request) bool {
	h := &st.head
	target := buf[h.target.off:h.target.end]
	var slowURL *url.URL
	if path, _, _ := cutByte(target, '?'); !httpsyntax.PlainPath(path) {
		u, err := url.ParseRequestURI(string(target))
		if err != nil {
			return false
		}
		slowURL = u
	}

	for i := range h.nfields {
		f := h.fields[i].name
		canonicalize(buf[f.off:f.end])
	}
	s := string(buf) // every string of the request shares this one copy

	st.built = true
	r := &st.req
	*r = *proto
	r.Method = s[h.method.off:h.method.end]
	r.RequestURI = s[h.target.off:h.target.end]
	if slowURL != nil {
		st.url = *slowURL
	} else {
		path, query, hasQuery := cutString(r.RequestURI, '?')
		st.url = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	}
	r.URL = &st.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	hdr := st.header
	vals := st.vals[:0]
	for i := range h.nfields {
		f := h.fields[i]
		k, v := s[f.name.off:f.name.end], s[f.value.off:f.value.end]
		if k == "Host" {
			r.Host = v
			continue
		}
		if vv, ok := hdr[k]; ok {
			hdr[k] = append(vv, v)
			continue
		}
		vals = append(vals, v)
		hdr[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if h.noCache {
		vals = append(vals, "no-cache")
		hdr["Cache-Control"] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	r.Header = hdr
	return true
}

func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

func cutString(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
