package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// upgrade relays a 101 Switching Protocols answer (WebSocket and other
// upgrades): it checks the server switched to the protocol the client
// asked for, takes over the client's connection, and copies both ways
// until either side is done. It is the one exchange that costs goroutines
// of its own.
func (rt *Route) upgrade(w http.ResponseWriter, r *http.Request, res *http.Response, reqType string) {
	back, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		res.Body.Close()
		rt.fail(w, r, errors.New("101 response with a body that is not a connection"))
		return
	}
	defer back.Close()
	resType := upgradeType(res.Header)
	if !printable(resType) || !strings.EqualFold(resType, reqType) {
		rt.fail(w, r, fmt.Errorf("server switched to protocol %q when %q was asked for", resType, reqType))
		return
	}

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		rt.fail(w, r, fmt.Errorf("taking over the client connection for %s: %w", reqType, err))
		return
	}
	defer conn.Close()
	// Ending the request ends the tunnel (golang/go#35559).
	stop := context.AfterFunc(r.Context(), func() { back.Close() })
	defer stop()

	// The 101 goes out as the server sent it, with the headers set on w
	// before (the request ID among them).
	h := w.Header()
	for k, v := range res.Header {
		h[k] = v
	}
	res.Header = h
	res.Body = nil // write only the head; the body is the tunnel
	if err := res.Write(brw); err != nil {
		rt.log.Debug("writing a 101 answer", "route", rt.name, "err", err)
		return
	}
	if err := brw.Flush(); err != nil {
		rt.log.Debug("writing a 101 answer", "route", rt.name, "err", err)
		return
	}

	errc := make(chan error, 2)
	go tunnel(back, brw, errc)  // client → server (brw may hold bytes read ahead)
	go tunnel(conn, back, errc) // server → client
	// When one side is done, the deferred Closes end the other.
	if err := <-errc; err == nil {
		<-errc
	}
}

// tunnel copies src to dst, then half-closes dst's write side when it can,
// so the peer sees the end of the stream while the other direction goes
// on. It reports nil only on a clean end of src.
func tunnel(dst io.Writer, src io.Reader, errc chan<- error) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			err = cw.CloseWrite()
		} else {
			err = errUpgradeDone
		}
	}
	errc <- err
}

var errUpgradeDone = errors.New("upgraded connection finished")
