package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// gRPC calls take a lane of their own through the route: their bodies are
// streams in both directions at once, ended by trailers, and a client
// wants the proxy's own failures as a gRPC status, which it can act on,
// rather than an HTTP status it can only call UNKNOWN or UNAVAILABLE.

// grpcMessage is the grpc-message of the proxy's own status: the cause,
// no detail of the error, as bodyFor's texts.
func grpcMessage(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "proxy: no server is available to handle this call"
	case http.StatusGatewayTimeout:
		return "proxy: the server did not answer in time"
	case http.StatusNotFound:
		return "proxy: no route matches this call"
	case http.StatusBadRequest, http.StatusRequestTimeout:
		return "proxy: the request stream is malformed or incomplete"
	case http.StatusRequestEntityTooLarge:
		return "proxy: the request is larger than the route allows"
	}
	return "proxy: the server could not be reached or sent an invalid response"
}

// WriteGRPCError answers a gRPC call with the status for err.
func WriteGRPCError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusFor(err)
	if status == 499 {
		if info := reqinfo.From(r.Context()); info != nil {
			info.GRPC, info.GRPCStatus = true, grpcwire.Canceled
		}
		return
	}
	// DEADLINE_EXCEEDED for a timeout, which a client may retry with a
	// longer deadline, rather than a bare UNAVAILABLE.
	grpcwire.WriteStatus(w, r, grpcwire.FromHTTP(status), grpcMessage(status))
}

// withGRPCTimeout bounds the call by its grpc-timeout, which so bounds
// each try's wait for an answer as well: a server that outlives it gets
// its stream reset, and the client DEADLINE_EXCEEDED from the proxy,
// rather than an answer nobody waits for.
func withGRPCTimeout(out *http.Request) (*http.Request, context.CancelFunc) {
	d, ok := grpcwire.Timeout(out.Header)
	if !ok {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(out.Context(), d)
	return out.WithContext(ctx), cancel
}

// relayGRPC relays a server's answer to a gRPC call: the head at once,
// each piece of the stream as it comes (HTTP/2 flow control then holds a
// fast server back to the pace of a slow client, as no byte waits in the
// proxy), and the trailers with the call's status. A stream the server
// cuts at a message's edge ends with UNAVAILABLE (DEADLINE_EXCEEDED for
// the call's deadline) from the proxy; one cut inside a message is reset,
// as no status can make half a message whole.
func (rt *Route) relayGRPC(w http.ResponseWriter, r *http.Request, res *http.Response, out *http.Request, info *reqinfo.Info) {
	h := w.Header()
	copyResponseHeader(h, res.Header)
	if n := len(res.Trailer); n > 0 {
		names := make([]string, 0, n)
		for k := range res.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(res.StatusCode)
	// A trailers-only answer (the call's status in its one HEADERS frame)
	// has no body: nothing is flushed, so it leaves as it came.
	var frames grpcwire.Frames
	werr, rerr := copyGRPC(w, res, &frames)
	code, seen := grpcwire.ParseStatus(res.Header["Grpc-Status"])
	if rerr != nil && r.Context().Err() != nil {
		// The client went away, and the transport said so in its words.
		werr, rerr = rerr, nil
	}
	if rerr != nil {
		res.Body.Close()
		if info != nil {
			info.Err = rerr
		}
		rt.log.Debug("reading a gRPC stream", "route", rt.name, "err", rerr)
		if !frames.AtEdge() || res.StatusCode != http.StatusOK {
			if r.Context().Value(http.ServerContextKey) != nil {
				panic(http.ErrAbortHandler)
			}
			return
		}
		code = grpcwire.Unavailable
		msg := "proxy: the server's stream broke off"
		if errors.Is(out.Context().Err(), context.DeadlineExceeded) {
			code, msg = grpcwire.DeadlineExceeded, "proxy: the call's deadline passed"
		}
		h[http.TrailerPrefix+"Grpc-Status"] = []string{grpcStatusText[code]}
		h[http.TrailerPrefix+"Grpc-Message"] = []string{msg}
		setGRPCStatus(info, code, true)
		return
	}
	res.Body.Close() // reads the trailers into res.Trailer
	if werr != nil {
		setGRPCStatus(info, grpcwire.Canceled, true)
		return
	}
	if c, ok := grpcwire.ParseStatus(res.Trailer["Grpc-Status"]); ok {
		code, seen = c, true
	}
	setGRPCStatus(info, code, seen)
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			h.Add(k, v)
		}
	}
}

func setGRPCStatus(info *reqinfo.Info, code int, seen bool) {
	if info == nil {
		return
	}
	info.GRPC = true
	if seen {
		info.GRPCStatus = code
	} else {
		info.GRPCStatus = grpcwire.NoStatus
	}
}

// grpcStatusText holds the grpc-status values the proxy writes.
var grpcStatusText = [...]string{grpcwire.Unavailable: "14", grpcwire.DeadlineExceeded: "4"}

// copyGRPC copies a gRPC response body to w, flushing each piece, and
// follows its messages in frames.
func copyGRPC(w http.ResponseWriter, res *http.Response, frames *grpcwire.Frames) (werr, rerr error) {
	if res.ContentLength == 0 {
		return nil, nil
	}
	if werr = flushWriter(w); werr != nil {
		return werr, nil
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			frames.Feed(buf[:n])
			if _, werr = w.Write(buf[:n]); werr != nil {
				return werr, nil
			}
			if werr = flushWriter(w); werr != nil {
				return werr, nil
			}
		}
		if err != nil {
			if err == io.EOF {
				return nil, nil
			}
			if errors.Is(err, context.Canceled) {
				return err, nil
			}
			return nil, err
		}
	}
}

// unsentCall reports whether a gRPC call whose try failed with err may go
// to another server with the body it has: no connection to the server
// could be made, so not a byte of the call's stream was read, and the
// stream, which cannot be kept for a replay, is whole still.
func unsentCall(req *http.Request, err error) bool {
	if err == nil || !isDialError(err) || !grpcwire.IsCall(req.Header) {
		return false
	}
	body := req.Body
	if t, ok := body.(*callTape); ok {
		body = t.rc
	}
	g, ok := body.(*guardedBody)
	return ok && g.n.Load() == 0 && g.early == nil
}
