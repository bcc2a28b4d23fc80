//go:build unix

package forward

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// A kill during a bounded park stays: ending the park must not put the
// header deadline back over the kill's.
func TestBoundedParkKeepsAKill(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pc := &pconn{Conn: conn}
	pc.useRaw()
	defer pc.Close()
	pc.armHeaderTimeout(time.Now(), time.Minute)
	if !pc.startBoundedPark() {
		t.Fatal("no bounded park with a header deadline set")
	}
	pc.kill()
	if _, ok := pc.endBoundedPark(); ok {
		t.Error("the park's end put the header deadline back after a kill")
	}
	if _, err := pc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after the kill: %v, want the kill's deadline", err)
	}
}
