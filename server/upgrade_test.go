package server

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/testcert"

	"golang.org/x/net/websocket"
)

func TestWebSocketEchoes(t *testing.T) {
	ws := backend(t, "ws", websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) }).ServeHTTP)
	// A WebSocket handler answers a plain GET with 400: no active checks.
	p := startProxy(t, "health_checks: {enabled: false}\nservers:\n"+servers(ws))
	conn, err := websocket.Dial("ws://"+p.Addr()+"/echo", "", "http://"+p.Addr()+"/")
	if err != nil {
		t.Fatalf("dial through proxy: %v", err)
	}
	defer conn.Close()
	for _, msg := range []string{"hello", "second message"} {
		if err := websocket.Message.Send(conn, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(conn, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Errorf("echo = %q, want %q", got, msg)
		}
	}
}

func TestTLSOffersHTTP2(t *testing.T) {
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	})
	cert, key := selfSigned(t)
	p := startProxy(t, "tls: {cert_file: "+cert+", key_file: "+key+"}\nservers:\n"+servers(a))
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}
	resp, err := c.Get("https://" + p.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2 through ALPN", resp.Proto)
	}
	if string(b) != "https" {
		t.Errorf("X-Forwarded-Proto at server = %q, want https", b)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key to a temporary
// directory.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := testcert.Write(certFile, keyFile, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestH2CWhenEnabled(t *testing.T) {
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	p := startProxy(t, "h2c: true\nhealth_checks: {enabled: false}\nservers:\n"+servers(a))
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Transport: tr}).Get("http://" + p.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("client spoke %s to the proxy, want HTTP/2 without TLS", resp.Proto)
	}
}

// Only the upgrades client.allowed_upgrades lists open a tunnel; websocket
// by default. h2c's upgrade is forwarded as an ordinary request: with a
// tunnel, later requests on it would reach the server with no routing,
// no X-Forwarded-For and no rate limit.
func TestUpgradesOnlyThoseAllowed(t *testing.T) {
	for _, mode := range []struct{ name, yaml string }{
		{"fast path", fastPathOn},
		{"fast path off", "client: {fast_path: false}\n"},
		{"echo allowed", "client: {allowed_upgrades: [websocket, echo]}\n"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			seen := make(chan string, 4)
			be := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Header.Get("Upgrade") + "|" + r.Header.Get("Connection") + "|" + r.Header.Get("HTTP2-Settings")
				if r.Header.Get("Upgrade") != "" {
					c, brw, _ := http.NewResponseController(w).Hijack()
					defer c.Close()
					brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\n\r\n")
					brw.Flush()
					io.Copy(c, brw)
					return
				}
				io.WriteString(w, "plain")
			})
			p := startProxy(t, mode.yaml+"servers:\n"+servers(be))
			for _, tc := range []struct {
				proto, head string
				tunnel      bool
			}{
				{"h2c", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n", false},
				{"echo", "Connection: Upgrade\r\nUpgrade: echo\r\n", mode.name == "echo allowed"},
			} {
				c, err := net.Dial("tcp", p.Addr())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n"+tc.head+"\r\n")
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				got := <-seen
				if tc.tunnel {
					if res.StatusCode != 101 || got != "echo|Upgrade|" {
						t.Errorf("%s: answer %d, server saw %q; want the upgrade relayed", tc.proto, res.StatusCode, got)
					}
					continue
				}
				b, _ := io.ReadAll(res.Body)
				if res.StatusCode != 200 || string(b) != "plain" || got != "||" {
					t.Errorf("%s: answer %d %q, server saw Upgrade|Connection|HTTP2-Settings = %q; want an ordinary request", tc.proto, res.StatusCode, b, got)
				}
			}
		})
	}
}
