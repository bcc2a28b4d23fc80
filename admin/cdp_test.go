//go:build unix

package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// This file is a minimal Chrome DevTools Protocol client, enough for the
// browser test to load a page, evaluate JavaScript in it and take a
// screenshot, without a third-party driver.

// findChromium returns the Chromium binary, or fails the test: a dashboard
// that no browser has rendered is untested, so a missing browser is an
// error to fix, not a reason to skip.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium not found: run `make test`, which installs Debian's chromium " +
		"through scripts/deps.sh (or `apt-get install chromium`, or set CHROMIUM=/path/to/chrome)")
	return ""
}

// browser is a headless Chromium started for one test.
type browser struct {
	cmd *exec.Cmd
	log *devtoolsLog
}

// devtoolsLog collects Chromium's stderr and reports the DevTools address
// it prints once it is ready.
type devtoolsLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addr  chan string
	found bool
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

func (l *devtoolsLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
		l.buf.Write(p)
	}
	if !l.found {
		if m := devtoolsRE.FindSubmatch(l.buf.Bytes()); m != nil {
			l.found = true
			l.addr <- string(m[1])
		}
	}
	return len(p), nil
}

func (l *devtoolsLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startBrowser starts Chromium and returns a DevTools connection to its
// blank first page. Everything is stopped when the test ends.
func startBrowser(t *testing.T, bin string) *cdp {
	t.Helper()
	b := &browser{log: &devtoolsLog{addr: make(chan string, 1)}}
	b.cmd = exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--window-size=1280,900",
		// Port 0: Chromium picks a free port and prints it. The DevTools
		// socket checks Origin; allow the one our client sends.
		"--remote-debugging-port=0", "--remote-allow-origins=http://127.0.0.1",
		"about:blank")
	b.cmd.Stdout = b.log
	b.cmd.Stderr = b.log
	// Its own process group, so the renderer and GPU helpers it forks are
	// stopped with it.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.WaitDelay = 5 * time.Second
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(b.stop)

	var wsURL string
	select {
	case wsURL = <-b.log.addr:
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium printed no DevTools address in 30s; output:\n%s", b.log)
	}
	page, err := pageTarget(wsURL)
	if err != nil {
		t.Fatalf("%v; chromium output:\n%s", err, b.log)
	}
	ws, err := websocket.Dial(page, "", "http://127.0.0.1")
	if err != nil {
		t.Fatalf("connect to DevTools %s: %v", page, err)
	}
	t.Cleanup(func() { ws.Close() })
	return &cdp{ws: ws}
}

func (b *browser) stop() {
	pgid := b.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// pageTarget asks the browser's HTTP endpoint for its first page's
// DevTools socket. wsURL is the browser socket Chromium printed, whose
// host and port the HTTP endpoint shares.
func pageTarget(wsURL string) (string, error) {
	m := regexp.MustCompile(`^ws://([^/]+)/`).FindStringSubmatch(wsURL)
	if m == nil {
		return "", fmt.Errorf("unexpected DevTools address %q", wsURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+m[1]+"/json/list", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("list DevTools targets: %w", err)
	}
	defer res.Body.Close()
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(res.Body).Decode(&targets); err != nil {
		return "", fmt.Errorf("list DevTools targets: %w", err)
	}
	for _, tg := range targets {
		if tg.Type == "page" && tg.WS != "" {
			return tg.WS, nil
		}
	}
	return "", errors.New("chromium has no page target")
}

// cdp is a DevTools connection to one page. Calls are sequential: it is
// used from the test goroutine only.
type cdp struct {
	ws *websocket.Conn
	id int
}

// call sends a command and waits for its answer, skipping the events
// Chromium sends in between.
func (c *cdp) call(method string, params, result any) error {
	c.id++
	c.ws.SetDeadline(time.Now().Add(30 * time.Second))
	if err := websocket.JSON.Send(c.ws, map[string]any{"id": c.id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(c.ws, &msg); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		if msg.ID != c.id {
			continue
		}
		if msg.Error != nil {
			return fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(msg.Result, result)
	}
}

// eval evaluates a JavaScript expression in the page and stores its JSON
// value in out.
func (c *cdp) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("evaluate %q: %s", expr, r.Exception.Text)
	}
	return json.Unmarshal(r.Result.Value, out)
}

// screenshot returns a PNG of the page's viewport.
func (c *cdp) screenshot() ([]byte, error) {
	var r struct {
		Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
	}
	err := c.call("Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	return r.Data, err
}
