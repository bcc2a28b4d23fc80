//go:build unix

package admin

import (
	"encoding/json"
	"testing"
	"time"
)

// click presses and releases the mouse on the centre of the element expr
// finds, as an operator would: the element must be shown and on top.
func click(t *testing.T, page *cdp, expr string) {
	t.Helper()
	var at struct{ X, Y float64 }
	if err := page.eval(`(() => { const el = `+expr+`; el.scrollIntoView({block: "center"});
	  const r = el.getBoundingClientRect(); return {X: r.x + r.width / 2, Y: r.y + r.height / 2}; })()`, &at); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"mousePressed", "mouseReleased"} {
		if err := page.call("Input.dispatchMouseEvent", map[string]any{
			"type": typ, "x": at.X, "y": at.Y, "button": "left", "clickCount": 1,
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// drained asks the admin API, not the page, whether server a is drained.
func (f *fixture) drained(t *testing.T) bool {
	t.Helper()
	_, body := f.do(t, "GET", "/api/upstreams", "")
	var got struct{ Upstreams []Upstream }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	return got.Upstreams[0].Servers[0].Drained
}

// TestDashboardDrainsAndEnables clicks a server's drain button, then its
// enable button, and checks the admin API's state changed each time: on
// a loopback listener with no token, and with a token, which the page
// asks for once, keeps for the tab, and drops when it is refused.
func TestDashboardDrainsAndEnables(t *testing.T) {
	bin := findChromium(t)
	page := startBrowser(t, bin)
	const button = `document.querySelector('tr.server[data-server="a"] button.act')`
	const status = `document.getElementById("action-text").textContent`

	waitDrained := func(t *testing.T, f *fixture, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for f.drained(t) != want {
			if time.Now().After(deadline) {
				t.Fatalf("server a drained = %v, want %v; page:\n%s", !want, want, pageText(page))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("no token", func(t *testing.T) {
		f := newFixture(t, Options{Loopback: true})
		openDashboard(t, page, f.srv.URL+"/", 1280, 900)
		waitUntil(t, page, "drain button", button+`?.textContent === "drain"`, 20*time.Second)
		click(t, page, button)
		waitDrained(t, f, true)
		waitUntil(t, page, "result shown", status+` === "api/a drained: it takes no new requests."`, 10*time.Second)
		waitUntil(t, page, "enable button", button+`.textContent === "enable"`, 10*time.Second)
		if s := evalString(t, page, `document.getElementById("auth").hidden ? "hidden" : "shown"`); s != "hidden" {
			t.Error("the page asked for a token the API does not need")
		}
		click(t, page, button)
		waitDrained(t, f, false)
		waitUntil(t, page, "result shown", status+` === "api/a enabled: back in rotation."`, 10*time.Second)
	})

	t.Run("token", func(t *testing.T) {
		f := newFixture(t, Options{Loopback: true, Token: "s3cret"})
		openDashboard(t, page, f.srv.URL+"/", 1280, 900)
		waitUntil(t, page, "drain button", button+`?.textContent === "drain"`, 20*time.Second)

		// A wrong token: refused, the error shown, nothing kept.
		click(t, page, button)
		waitUntil(t, page, "token asked", `!document.getElementById("auth").hidden`, 10*time.Second)
		typeToken(t, page, "wrong")
		waitUntil(t, page, "refusal shown", status+`.startsWith("drain api/a failed: HTTP 401")`, 10*time.Second)
		if f.drained(t) {
			t.Fatal("drained with a wrong token")
		}
		if got := evalString(t, page, `sessionStorage.getItem("proxy-admin-token") ?? ""`); got != "" {
			t.Errorf("a refused token is kept: %q", got)
		}

		// The right one: drained, and kept for the tab.
		click(t, page, button)
		waitUntil(t, page, "token asked again", `!document.getElementById("auth").hidden`, 10*time.Second)
		typeToken(t, page, "s3cret")
		waitDrained(t, f, true)
		waitUntil(t, page, "result shown", status+` === "api/a drained: it takes no new requests."`, 10*time.Second)
		if got := evalString(t, page, `sessionStorage.getItem("proxy-admin-token") ?? ""`); got != "s3cret" {
			t.Errorf("token kept %q, want it for the tab", got)
		}
		if got := evalString(t, page, `localStorage.length + ""`); got != "0" {
			t.Error("the token went to localStorage, which outlives the tab")
		}

		// Enable: the kept token goes along, nothing asked.
		waitUntil(t, page, "enable button", button+`.textContent === "enable"`, 10*time.Second)
		click(t, page, button)
		waitDrained(t, f, false)
		if s := evalString(t, page, `document.getElementById("auth").hidden ? "hidden" : "shown"`); s != "hidden" {
			t.Error("the page asked again for the token it kept")
		}
		f.state.mu.Lock()
		drains := f.state.drains
		f.state.mu.Unlock()
		if len(drains) != 2 || drains[0] != "api/a=true" || drains[1] != "api/a=false" {
			t.Errorf("drain calls %v", drains)
		}
	})
}

// typeToken types tok into the token form and sends it.
func typeToken(t *testing.T, page *cdp, tok string) {
	t.Helper()
	var ok bool
	if err := page.eval(`(() => { const i = document.getElementById("auth-token"); i.focus(); return document.activeElement === i; })()`, &ok); err != nil || !ok {
		t.Fatalf("token input not focusable: %v", err)
	}
	if err := page.call("Input.insertText", map[string]any{"text": tok}, nil); err != nil {
		t.Fatal(err)
	}
	click(t, page, `document.querySelector('#auth button[type="submit"]')`)
}
