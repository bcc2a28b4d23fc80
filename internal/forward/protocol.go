package forward

import (
	"net/http"
	"time"
)

// setProtocol makes tr speak protocol to servers. "auto" (and "") leaves
// tr as NewTransport built it: HTTP/2 where an https server offers it
// through ALPN, HTTP/1.1 otherwise.
func setProtocol(tr *http.Transport, protocol string) {
	p := new(http.Protocols)
	switch protocol {
	case "http1":
		p.SetHTTP1(true)
	case "h2c":
		// HTTP/2 with prior knowledge (RFC 9113 §3.3): the preface
		// straight away, no Upgrade, which §3.1 deprecates and gRPC
		// servers do not take.
		p.SetUnencryptedHTTP2(true)
	case "h2":
		p.SetHTTP2(true)
	default:
		return
	}
	tr.Protocols = p
	if protocol != "http1" {
		tr.HTTP2 = &http.HTTP2Config{
			// A server gone silent (its host down, a middlebox that
			// dropped the flow) is found by a ping rather than by the
			// streams on the connection hanging; streams of a gRPC
			// connection may be idle for minutes by design.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		}
	}
}
