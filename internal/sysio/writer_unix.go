//go:build unix

package sysio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Writer writes to a connection through its file descriptor with Write,
// waiting in RawConn.Write when the socket is full, and answers as the
// connection's own Write does, errors included. Unlike that Write it is
// not safe for concurrent use: a write's state lives in the Writer,
// outside the descriptor's write lock.
type Writer struct {
	conn  net.Conn
	raw   syscall.RawConn
	fn    func(fd uintptr) bool // w.writeSome, made once
	out   []byte
	wrote int
	err   error
}

// Init has w write to conn, whose descriptor raw gives.
func (w *Writer) Init(conn net.Conn, raw syscall.RawConn) {
	w.conn, w.raw = conn, raw
	w.fn = w.writeSome
}

// Write writes p whole, or says why not, as conn.Write does.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		// An error on a closed connection or a passed deadline, even
		// for nothing.
		return w.conn.Write(p)
	}
	w.out, w.wrote, w.err = p, 0, nil
	err := w.raw.Write(w.fn)
	n := w.wrote
	w.out = nil
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			op.Op = "write" // as Conn.Write says, not "raw-write"
		}
		return n, err
	}
	if err = w.err; err != nil {
		w.err = nil
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("write", errno)
		}
		local := w.conn.LocalAddr()
		return n, &net.OpError{Op: "write", Net: local.Network(), Source: local, Addr: w.conn.RemoteAddr(), Err: err}
	}
	return n, nil
}

// writeSome is Write's part inside RawConn.Write, which waits for the
// socket to take more and calls it again whenever it returns false.
func (w *Writer) writeSome(fd uintptr) bool {
	for w.wrote < len(w.out) {
		n, err := Write(fd, w.out[w.wrote:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			w.err = err
			return true
		case n == 0:
			w.err = io.ErrUnexpectedEOF
			return true
		}
		w.wrote += n
	}
	return true
}
