package health

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Probe checks one server, whose probe target (URL) is target, in place
// of the HTTP GET; it says whether the server passed and what it got, in
// a few words for the log.
type Probe func(ctx context.Context, target string) (ok bool, result string)

// GRPCProbe returns a Probe that asks a server's standard health service
// (grpc.health.v1.Health/Check) about service, "" meaning the server as
// a whole, as gRPC load balancers do: the server passes when it answers
// SERVING. transport must speak HTTP/2 to the servers (h2c or h2). The
// messages are a field or two of protobuf, written and read here by hand
// rather than with a gRPC client, which would bring its own connection
// management next to the transport's.
func GRPCProbe(transport http.RoundTripper, service string) Probe {
	// HealthCheckRequest{service = 1}, in a gRPC message frame.
	msg := protoString(nil, 1, service)
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	return func(ctx context.Context, target string) (bool, string) {
		u, err := url.Parse(target)
		if err != nil {
			return false, err.Error()
		}
		u.Path, u.RawPath, u.RawQuery = "/grpc.health.v1.Health/Check", "", ""
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(frame))
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		req.Header.Set("User-Agent", "proxy-health-check")
		res, err := transport.RoundTrip(req)
		if err != nil {
			return false, describe(err, 0)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return false, "status " + strconv.Itoa(res.StatusCode)
		}
		body, err := io.ReadAll(io.LimitReader(res.Body, MaxBody))
		if err != nil {
			return false, "reading the answer: " + describe(err, 0)
		}
		code := res.Trailer.Get("Grpc-Status")
		if code == "" {
			code = res.Header.Get("Grpc-Status") // a trailers-only answer
		}
		if code != "0" {
			// 5 NOT_FOUND: the server does not know the service.
			return false, "grpc-status " + strconv.Quote(code)
		}
		st, err := servingStatus(body)
		if err != nil {
			return false, err.Error()
		}
		if st != 1 {
			return false, servingNames[min(st, uint64(len(servingNames)-1))]
		}
		return true, "SERVING"
	}
}

// servingNames are HealthCheckResponse.ServingStatus's names.
var servingNames = []string{"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", "status out of range"}

// servingStatus reads HealthCheckResponse{status = 1} from one framed
// message; an absent field is 0 (UNKNOWN), as protobuf has it.
func servingStatus(body []byte) (uint64, error) {
	if len(body) < 5 || body[0] != 0 {
		return 0, errors.New("no uncompressed message in the answer")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	if uint64(n) > uint64(len(body)-5) {
		return 0, errors.New("answer cut short")
	}
	m := body[5 : 5+n]
	var status uint64
	for len(m) > 0 {
		key, k := binary.Uvarint(m)
		if k <= 0 {
			return 0, errors.New("malformed answer")
		}
		m = m[k:]
		switch key & 7 {
		case 0: // varint
			v, k := binary.Uvarint(m)
			if k <= 0 {
				return 0, errors.New("malformed answer")
			}
			if key>>3 == 1 {
				status = v
			}
			m = m[k:]
		case 2: // length-delimited
			l, k := binary.Uvarint(m)
			if k <= 0 || l > uint64(len(m)-k) {
				return 0, errors.New("malformed answer")
			}
			m = m[k+int(l):]
		case 1:
			if len(m) < 8 {
				return 0, errors.New("malformed answer")
			}
			m = m[8:]
		case 5:
			if len(m) < 4 {
				return 0, errors.New("malformed answer")
			}
			m = m[4:]
		default:
			return 0, errors.New("malformed answer")
		}
	}
	return status, nil
}

// protoString appends string field number field to b, unless s is empty
// (proto3 leaves default values out).
func protoString(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
