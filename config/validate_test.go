package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// one is a valid first line that the validation cases build on.
const one = "servers: [{url: http://a}]\n"

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want string
	}{
		// Servers.
		{"url missing", "servers:\n  - weight: 2\n",
			nil, `t.yaml:2:5: servers[0].url: required, such as http://10.0.0.1:8080`},
		{"url without scheme", "servers:\n  - url: backend:8080\n",
			nil, `t.yaml:2:10: servers[0].url: "backend:8080" needs a scheme: http://backend:8080`},
		{"url scheme", "servers:\n  - url: ftp://a\n",
			nil, `t.yaml:2:10: servers[0].url: scheme must be http or https, not "ftp"`},
		{"url without host", "servers:\n  - url: http:///x\n",
			nil, `t.yaml:2:10: servers[0].url: "http:///x" has no host`},
		{"url with query", "servers:\n  - url: http://a/?x=1\n",
			nil, `t.yaml:2:10: servers[0].url: must not have a query (?...)`},
		{"url with fragment", "servers:\n  - url: http://a/#top\n",
			nil, `t.yaml:2:10: servers[0].url: must not have a fragment (#...)`},
		{"url with credentials", "servers:\n  - url: http://u:p@a\n",
			nil, `t.yaml:2:10: servers[0].url: credentials in the URL are not sent to the server; remove "u@"`},
		{"url port", "servers:\n  - url: http://a:99999\n",
			nil, `t.yaml:2:10: servers[0].url: "99999" is not a port number (1-65535)`},
		{"duplicate url", "servers:\n  - url: http://a\n  - url: HTTP://A:80/\n",
			nil, `t.yaml:3:10: servers[1].url: duplicate of servers[0]`},
		{"duplicate name", "servers:\n  - {url: http://a, name: x}\n  - {url: http://b, name: x}\n",
			nil, `t.yaml:3:27: servers[1].name: duplicate name "x", also used by servers[0]`},
		{"weight zero", "servers:\n  - url: http://a\n    weight: 0\n",
			nil, `t.yaml:3:13: servers[0].weight: must be an integer ≥ 1, not 0`},
		{"weight negative", "servers:\n  - url: http://a\n    weight: -2\n",
			nil, `t.yaml:3:13: servers[0].weight: must be an integer ≥ 1, not -2`},
		{"max connections", "servers:\n  - url: http://a\n    max_connections: -1\n",
			nil, `t.yaml:3:22: servers[0].max_connections: must be ≥ 0 (0 means unlimited), not -1`},
		{"only backups", "servers:\n  - {url: http://a, backup: true}\n",
			nil, `t.yaml:2:3: servers: every server is a backup; at least one must not be`},

		// Discovery.
		{"discovery without name", one + "upstreams:\n  api:\n    discovery: {dns: {port: 80}}\n",
			nil, `t.yaml:4:22: upstreams.api.discovery.dns.name: required: the name to look up (or srv: the SRV record)`},
		{"discovery name without port", one + "upstreams:\n  api:\n    discovery: {dns: {name: api.internal}}\n",
			nil, `t.yaml:4:22: upstreams.api.discovery.dns.port: required with name: the servers' port, 1 to 65535, not 0`},
		{"discovery name and srv", one + "upstreams:\n  api:\n    discovery: {dns: {name: a, srv: _http._tcp.a, port: 80}}\n",
			nil, `t.yaml:4:37: upstreams.api.discovery.dns.srv: set name or srv, not both`},
		{"discovery resolver", one + "upstreams:\n  api:\n    discovery: {dns: {srv: _http._tcp.a, resolver: 10.0.0.1}}\n",
			nil, `t.yaml:4:52: upstreams.api.discovery.dns.resolver: must be host:port, such as 127.0.0.1:53, not "10.0.0.1"`},
		{"discovery on the top-level upstream", one + "discovery: {dns: {name: a, port: 80}}\n",
			nil, `t.yaml:2:12: discovery: applies to a named upstream: set it as upstreams.NAME.discovery and route to it`},

		// Protocol.
		{"protocol typo", one + "protocol: atuo\n",
			nil, `t.yaml:2:11: protocol: unknown protocol "atuo", did you mean "auto"?`},
		{"h2c with an https server", "servers: [{url: https://a}]\nprotocol: h2c\n",
			nil, `t.yaml:1:17: servers[0].url: protocol h2c needs a http:// URL, not "https://a"`},
		{"h2 with an http server", one + "protocol: h2\n",
			nil, `t.yaml:1:17: servers[0].url: protocol h2 needs a https:// URL, not "http://a"`},
		{"grpc health check over HTTP/1.1", one + "protocol: http1\nhealth_checks: {grpc: {service: x}}\n",
			nil, `t.yaml:3:23: health_checks.grpc: needs protocol h2c or h2, since gRPC runs on HTTP/2 (protocol is http1)`},
		{"grpc health check over h2c", one + "protocol: h2c\nhealth_checks: {grpc: {service: x}}\n",
			nil, ``},

		// Load balancing.
		{"strategy typo", one + "load_balancing: {strategy: least_conections}\n",
			nil, `t.yaml:2:28: load_balancing.strategy: unknown strategy "least_conections", did you mean "least_connections"?`},
		{"hash_key under another strategy warns", one + "load_balancing: {strategy: ip_hash, hash_key: uri}\n",
			nil, `t.yaml:2:47: warning: load_balancing.hash_key: ignored: only strategy consistent_hash uses it, not "ip_hash"`},
		{"hash_key under the default strategy warns", one + "load_balancing: {hash_key: \"header:X-User\"}\n",
			nil, `t.yaml:2:28: warning: load_balancing.hash_key: ignored: only strategy consistent_hash uses it, not "round_robin"`},
		{"bad hash_key under another strategy is still an error", one + "load_balancing: {strategy: random, hash_key: body}\n",
			nil, `t.yaml:2:46: load_balancing.hash_key: must be ip | uri | header:NAME | cookie:NAME, not "body"`},
		{"warnings come with the errors", one + "load_balancing: {strategy: random, hash_key: ip}\nlisten: 80\n",
			nil, `t.yaml:2:46: warning: load_balancing.hash_key: ignored: only strategy consistent_hash uses it, not "random"` + "\n" +
				`t.yaml:3:9: listen: "80" is not a host:port address; write ":80" to use every interface`},
		{"named upstream warns", "upstreams: {api: {servers: [{url: http://b}], load_balancing: {hash_key: uri}}}\nroutes: [{upstream: api}]\n",
			nil, `t.yaml:1:74: warning: upstreams.api.load_balancing.hash_key: ignored: only strategy consistent_hash uses it, not "round_robin"`},
		{"hash_key kind", one + "load_balancing: {strategy: consistent_hash, hash_key: body}\n",
			nil, `t.yaml:2:55: load_balancing.hash_key: must be ip | uri | header:NAME | cookie:NAME, not "body"`},
		{"hash_key header name", one + "load_balancing: {strategy: consistent_hash, hash_key: \"header:\"}\n",
			nil, `t.yaml:2:55: load_balancing.hash_key: needs a name after "header:", such as "header:X-Api-Key"`},
		{"hash_key cookie token", one + "load_balancing: {strategy: consistent_hash, hash_key: \"cookie:a b\"}\n",
			nil, `t.yaml:2:55: load_balancing.hash_key: "a b" is not a valid cookie name`},
		{"hash_key ip with name", one + "load_balancing: {strategy: consistent_hash, hash_key: \"ip:x\"}\n",
			nil, `t.yaml:2:55: load_balancing.hash_key: "ip" takes no name; must be ip | uri | header:NAME | cookie:NAME`},
		{"bounded_load zero", one + "load_balancing: {strategy: consistent_hash, bounded_load: 0}\n",
			nil, `t.yaml:2:59: load_balancing.bounded_load: must be greater than 0, such as 0.25`},
		{"bounded_load without consistent_hash warns", one + "load_balancing: {bounded_load: 0.5}\n",
			nil, `t.yaml:2:32: warning: load_balancing.bounded_load: ignored: only strategy consistent_hash uses it, not "round_robin"`},

		// Health checks.
		{"interval zero", one + "health_checks: {interval: 0}\n",
			nil, `t.yaml:2:27: health_checks.interval: must be a duration greater than 0, such as "10s"`},
		{"timeout longer than interval", one + "health_checks: {interval: 1s, timeout: 2s}\n",
			nil, `t.yaml:2:40: health_checks.timeout: must not be longer than interval (1s), or probes would overlap`},
		{"path", one + "health_checks: {path: health}\n",
			nil, `t.yaml:2:23: health_checks.path: must start with /, not "health"`},
		{"expected_status syntax", one + "health_checks: {expected_status: 2xx}\n",
			nil, `t.yaml:2:34: health_checks.expected_status: "2xx" is not a status list such as "200", "200-399" or "200,204"`},
		{"expected_status range", one + "health_checks: {expected_status: \"200-600\"}\n",
			nil, `t.yaml:2:34: health_checks.expected_status: status codes must be between 100 and 599, in "200-600"`},
		{"expected_status backwards", one + "health_checks: {expected_status: \"300-200\"}\n",
			nil, `t.yaml:2:34: health_checks.expected_status: range "300-200" runs backwards`},
		{"fast_interval zero", one + "health_checks: {fast_interval: 0s}\n",
			nil, `t.yaml:2:32: health_checks.fast_interval: must be a duration greater than 0, such as "10s"`},
		{"healthy_threshold", one + "health_checks: {healthy_threshold: 0}\n",
			nil, `t.yaml:2:36: health_checks.healthy_threshold: must be an integer ≥ 1, not 0`},
		{"unhealthy_threshold", one + "health_checks: {unhealthy_threshold: -1}\n",
			nil, `t.yaml:2:38: health_checks.unhealthy_threshold: must be an integer ≥ 1, not -1`},
		{"passive failures", one + "health_checks: {passive: {consecutive_failures: 0}}\n",
			nil, `t.yaml:2:49: health_checks.passive.consecutive_failures: must be an integer ≥ 1, not 0`},
		{"passive max ejection time", one + "health_checks: {passive: {ejection_time: 1m, max_ejection_time: 30s}}\n",
			nil, `t.yaml:2:65: health_checks.passive.max_ejection_time: must not be shorter than ejection_time (1m0s)`},
		{"passive max percent", one + "health_checks: {passive: {max_ejection_percent: 101}}\n",
			nil, `t.yaml:2:49: health_checks.passive.max_ejection_percent: must be between 1 and 100, not 101`},

		// Rate limits.
		{"rate missing", one + "rate_limit: {burst: 5}\n",
			nil, `t.yaml:2:13: rate_limit.requests_per_second: required: a number greater than 0`},
		{"rate negative", one + "rate_limit: {requests_per_second: -1}\n",
			nil, `t.yaml:2:35: rate_limit.requests_per_second: required: a number greater than 0`},
		{"burst zero", one + "rate_limit: {requests_per_second: 5, burst: 0}\n",
			nil, `t.yaml:2:45: rate_limit.burst: must be an integer ≥ 1, not 0`},
		{"key cookie", one + "rate_limit: {requests_per_second: 5, key: \"cookie:s\"}\n",
			nil, `t.yaml:2:43: rate_limit.key: must be ip or header:NAME, not "cookie:s"`},
		{"key unknown", one + "rate_limit: {requests_per_second: 5, key: user}\n",
			nil, `t.yaml:2:43: rate_limit.key: must be ip | header:NAME, not "user"`},
		{"store", one + "rate_limit: {requests_per_second: 5, store: mem}\n",
			nil, `t.yaml:2:45: rate_limit.store: must be memory or redis, not "mem"`},
		{"on_store_error", one + "rate_limit: {requests_per_second: 5, on_store_error: ignore}\n",
			nil, `t.yaml:2:54: rate_limit.on_store_error: must be allow or deny, not "ignore"`},
		{"trusted proxies", one + "rate_limit: {requests_per_second: 5, trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]}\n",
			nil, `t.yaml:2:68: rate_limit.trusted_proxies[1]: "10.0.0.0/33" is not an IP address or CIDR such as 10.0.0.0/8`},
		{"redis address", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {address: redis}}\n",
			nil, `t.yaml:2:69: rate_limit.redis.address: "redis" is not a host:port address such as ":8080" or "127.0.0.1:8080"`},
		{"redis timeout", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {timeout: 0}}\n",
			nil, `t.yaml:2:69: rate_limit.redis.timeout: must be a duration greater than 0, such as "10s"`},
		{"redis address and addresses", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {address: a:1, addresses: [b:1]}}\n",
			nil, `t.yaml:2:85: rate_limit.redis.addresses: either address or addresses, not both (address is a one-element addresses)`},
		{"redis addresses empty", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {addresses: []}}\n",
			nil, `t.yaml:2:71: rate_limit.redis.addresses: required: at least one host:port`},
		{"redis addresses entry", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {addresses: [a:1, b]}}\n",
			nil, `t.yaml:2:77: rate_limit.redis.addresses[1]: "b" is not a host:port address such as ":8080" or "127.0.0.1:8080"`},
		{"redis cluster db", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {addresses: [a:1, b:1], db: 2}}\n",
			nil, `t.yaml:2:87: rate_limit.redis.db: must be 0 with a Redis Cluster (2 addresses, no master_name), which has only database 0`},
		{"redis cluster and sentinel", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {master_name: m, cluster: true}}\n",
			nil, `t.yaml:2:85: rate_limit.redis.cluster: cannot be combined with master_name: Sentinel watches one master, a cluster has many`},
		{"redis username without password", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {username: u}}\n",
			nil, `t.yaml:2:59: rate_limit.redis.password: required with username (Redis ACL users log in with AUTH username password)`},
		{"redis client cert without key", one + "rate_limit: {requests_per_second: 5, store: redis, redis: {tls: {cert_file: c.pem}}}\n",
			nil, `t.yaml:2:77: rate_limit.redis.tls.cert_file: cert_file and key_file go together: the client certificate and its key`},

		// Retries and circuit breaker.
		{"attempts", one + "retries: {attempts: 11}\n",
			nil, `t.yaml:2:21: retries.attempts: must be between 0 and 10, not 11`},
		{"budget above one", one + "retries: {attempts: 2, budget: 1.5}\n",
			nil, `t.yaml:2:32: retries.budget: must be greater than 0 and at most 1, such as 0.2, not 1.5`},
		{"budget zero", one + "retries: {attempts: 2, budget: 0}\n",
			nil, `t.yaml:2:32: retries.budget: must be greater than 0 and at most 1, such as 0.2, not 0`},
		{"retry_on unknown", one + "retries: {attempts: 1, retry_on: [unavailble]}\n",
			nil, `t.yaml:2:35: retries.retry_on[0]: no gRPC status "unavailble" to retry on, only unavailable, did you mean "unavailable"?`},
		{"retry_on without attempts", one + "retries: {retry_on: [unavailable]}\n",
			nil, `t.yaml:2:21: retries.retry_on: needs retries.attempts of 1 or more`},
		{"breaker failures", one + "circuit_breaker: {consecutive_failures: 0}\n",
			nil, `t.yaml:2:41: circuit_breaker.consecutive_failures: must be an integer ≥ 1, not 0`},
		{"breaker open time", one + "circuit_breaker: {open_time: 0s}\n",
			nil, `t.yaml:2:30: circuit_breaker.open_time: must be a duration greater than 0, such as "10s"`},

		// Upstreams.
		{"named upstream needs servers", "upstreams:\n  api: {}\nroutes: [{upstream: api}]\n",
			nil, `t.yaml:2:8: upstreams.api.servers: required: at least one server`},
		{"named upstream null", "upstreams:\n  api:\nroutes: [{upstream: api}]\n",
			nil, `t.yaml:2:7: upstreams.api.servers: required: at least one server`},
		{"reserved name", one + "upstreams:\n  default: {servers: [{url: http://b}]}\n",
			nil, `t.yaml:3:12: upstreams.default: the name "default" is reserved for the top-level servers; choose another`},
		{"invalid name", one + "upstreams:\n  \"a b\": {servers: [{url: http://b}]}\n",
			nil, `t.yaml:3:10: upstreams.a b: invalid upstream name "a b": use letters, digits, '.', '_' and '-'`},
		{"top-level section without top-level servers", "upstreams: {api: {servers: [{url: http://b}]}}\nroutes: [{upstream: api}]\nretries: {attempts: 1}\n",
			nil, `t.yaml:3:10: retries: applies to the top-level servers, and there are none; set it inside each upstream instead`},

		// Routes.
		{"route upstream typo", one + "upstreams: {api: {servers: [{url: http://b}]}}\nroutes: [{upstream: apl}]\n",
			nil, `t.yaml:3:21: routes[0].upstream: no upstream named "apl", did you mean "api"?`},
		{"route upstream required", "upstreams: {api: {servers: [{url: http://b}]}}\nroutes: [{upstream: api}, {match: {path_prefix: /x}}]\n",
			nil, `t.yaml:2:27: routes[1].upstream: required: there are no top-level servers to send to by default`},
		{"route to missing default", "upstreams: {api: {servers: [{url: http://b}]}}\nroutes: [{upstream: default}]\n",
			nil, `t.yaml:2:21: routes[0].upstream: "default" names the top-level servers, and there are none`},
		{"duplicate route name", one + "routes: [{name: a}, {name: a}]\n",
			nil, `t.yaml:2:28: routes[1].name: duplicate route name "a", also used by routes[0]`},
		{"path_prefix", one + "routes: [{match: {path_prefix: api}}]\n",
			nil, `t.yaml:2:32: routes[0].match.path_prefix: must start with /, not "api"`},
		{"host wildcard in the middle", one + "routes: [{match: {host: \"a.*.com\"}}]\n",
			nil, `t.yaml:2:25: routes[0].match.host: "a.*.com" is not a host name or a wildcard such as *.example.com`},
		{"host with port", one + "routes: [{match: {host: \"a.com:80\"}}]\n",
			nil, `t.yaml:2:25: routes[0].match.host: "a.com:80" is not a host name or a wildcard such as *.example.com`},
		{"strip_prefix without prefix", one + "routes: [{match: {host: a.com}, strip_prefix: true}]\n",
			nil, `t.yaml:2:47: routes[0].strip_prefix: needs match.path_prefix, the prefix to strip`},
		{"route rate limit", one + "routes: [{rate_limit: {requests_per_second: 0}}]\n",
			nil, `t.yaml:2:45: routes[0].rate_limit.requests_per_second: required: a number greater than 0`},

		{"header placeholder", one + "routes: [{policies: [{headers: {request: {set: {X-S: \"{tls_client_subjct}\"}}}}]}]\n",
			nil, `t.yaml:2:54: routes[0].policies[0].headers.request.set.X-S: unknown placeholder {tls_client_subjct}, did you mean "tls_client_subject"? (one of: {scheme}, {host}, {hostname}, {port}, {path}, {query}, {uri}, {tls_client_subject})`},
		{"header placeholders", one + "routes: [{policies: [{headers: {request: {set: {X-S: \"{tls_client_subject} {host}\"}}, response: {set: {X-J: \"{literal}\"}}}}]}]\n", nil, ""},

		// Listeners, TLS, admin.
		{"listen port only", one + "listen: 8080\n",
			nil, `t.yaml:2:9: listen: "8080" is not a host:port address; write ":8080" to use every interface`},
		{"listen port name", one + "listen: \"localhost:http\"\n",
			nil, `t.yaml:2:9: listen: "http" is not a port number (0-65535)`},
		{"tls needs key", one + "tls: {cert_file: c.pem}\n",
			nil, `t.yaml:2:6: tls.key_file: required when tls is set`},
		{"tls empty", one + "tls:\n",
			nil, `t.yaml:2:5: tls.cert_file: required when tls is set` + "\n" + `t.yaml:2:5: tls.key_file: required when tls is set`},
		{"acme with files", one + "tls: {cert_file: c, key_file: k, acme: {domains: [a.com]}}\n",
			nil, `t.yaml:2:40: tls.acme: cannot be used with cert_file and key_file: the certificate comes from the files or from the CA, not both`},
		{"acme needs domains", one + "tls: {acme: {email: a@b.c}}\n",
			nil, `t.yaml:2:13: tls.acme.domains: required: list the names to obtain certificates for, or set on_demand: true with an ask URL`},
		{"acme on demand needs ask", one + "tls: {acme: {on_demand: true}}\n",
			nil, `t.yaml:2:13: tls.acme.ask: required with on_demand: the URL that approves each name before a certificate is requested, or anyone pointing a name here spends the CA's rate limits`},
		{"acme on demand", one + "tls: {acme: {on_demand: true, ask: \"http://127.0.0.1:5555/ok\"}}\n", nil, ""},
		{"acme unknown challenge", one + "tls: {acme: {domains: [a.com], challenges: [tls-alpn01]}}\n",
			nil, `t.yaml:2:45: tls.acme.challenges[0]: unknown challenge "tls-alpn01", did you mean "tls-alpn-01"? (the proxy answers http-01 and tls-alpn-01)`},
		{"acme http-01 without redirect", one + "tls: {acme: {domains: [a.com], challenges: [http-01]}}\n",
			nil, `t.yaml:2:45: tls.acme.challenges[0]: http-01 is answered on the http_redirect listener, and there is none: set http_redirect (port 80 for a public CA) or use tls-alpn-01`},
		{"acme http-01 with redirect", one + "http_redirect: \":8081\"\ntls: {acme: {domains: [a.com, \"*.b.com\"], challenges: [http-01, tls-alpn-01]}}\n", nil, ""},
		{"acme bad domain", one + "tls: {acme: {domains: [\"a b\"]}}\n",
			nil, `t.yaml:2:24: tls.acme.domains[0]: "a b" is not a host name (such as example.com or *.example.com)`},
		{"acme plain http ca", one + "tls: {acme: {domains: [a.com], ca: \"http://ca/dir\"}}\n",
			nil, `t.yaml:2:36: tls.acme.ca: "http://ca/dir" must be an https:// URL (RFC 8555 §6.1)`},
		{"internal", one + "tls: {internal: true}\n", nil, ""},
		{"internal with files", one + "tls: {internal: true, cert_file: c, key_file: k}\n",
			nil, `t.yaml:2:17: tls.internal: cannot be used with cert_file and key_file: the certificate comes from the files or from the local CA, not both`},
		{"internal with a ca", one + "tls: {internal: true, acme: {domains: [localhost], ca: \"https://x/\"}}\n",
			nil, `t.yaml:2:56: tls.acme.ca: has no effect with tls.internal: the local CA issues without ACME (only domains and storage apply)`},
		{"h2c with tls", one + "tls: {cert_file: c, key_file: k}\nh2c: true\n",
			nil, `t.yaml:3:6: h2c: has no effect with tls, where HTTP/2 is offered through ALPN; remove one of them`},
		{"admin off", one + "admin: {listen: \"\"}\n", nil, ""},
		{"admin public without token", one + "admin: {listen: \"0.0.0.0:9901\"}\n",
			nil, `t.yaml:2:8: admin.token: required when admin.listen is not a loopback address: the admin API can reload the config`},
		{"admin public with token", one + "admin: {listen: \":9901\", token: \"${T}\"}\n", map[string]string{"T": "x"}, ""},
		{"admin on localhost", one + "admin: {listen: \"localhost:9901\"}\n", nil, ""},
		{"admin same as listen", one + "listen: \"127.0.0.1:80\"\nadmin: {listen: \"127.0.0.1:80\"}\n",
			nil, `t.yaml:3:17: admin.listen: must differ from listen ("127.0.0.1:80"): both would take the same port`},
		{"admin on the port listen takes everywhere", one + "listen: \":80\"\nadmin: {listen: \"127.0.0.1:80\"}\n",
			nil, `t.yaml:3:17: admin.listen: must differ from listen (":80"): both would take the same port`},
		{"max header bytes", one + "client: {max_header_bytes: 0}\n",
			nil, `t.yaml:2:28: client.max_header_bytes: must be greater than 0`},

		// Logging and tracing.
		{"log level typo", one + "logging: {level: warning}\n",
			nil, `t.yaml:2:18: logging.level: must be debug, info, warn or error, not "warning", did you mean "warn"?`},
		{"log format", one + "logging: {format: yaml}\n",
			nil, `t.yaml:2:19: logging.format: must be text or json, not "yaml"`},
		{"access log empty", one + "logging: {access_log: \"\"}\n",
			nil, `t.yaml:2:23: logging.access_log: must be stdout, stderr, off or a file path`},
		{"sample ratio", one + "tracing: {sample_ratio: 1.5}\n",
			nil, `t.yaml:2:25: tracing.sample_ratio: must be between 0 and 1, not 1.5`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseEnv(t, tc.src, tc.env)
			var want []string
			if tc.want != "" {
				want = strings.Split(tc.want, "\n")
			}
			got := errLines(t, err)
			if err == nil {
				got = errLines(t, c.Warnings.err())
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// A value that fails to decode must not also fail validation: one mistake,
// one message.
func TestDecodeErrorSuppressesValidation(t *testing.T) {
	_, err := parseEnv(t, "servers:\n  - url: http://a\n    weight: heavy\nupstreams:\n  api: [x]\nroutes: [{upstream: api}]\n", nil)
	want := []string{
		`t.yaml:3:13: servers[0].weight: must be an integer, not "heavy"`,
		`t.yaml:5:8: upstreams.api: must be a mapping of settings, not a list`,
	}
	if diff := cmp.Diff(want, errLines(t, err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// With no close match, the message lists every registered strategy.
func TestUnknownStrategyListsChoices(t *testing.T) {
	_, err := parseEnv(t, one+"load_balancing: {strategy: fastest_please}\n", nil)
	want := []string{`t.yaml:2:28: load_balancing.strategy: unknown strategy "fastest_please" (one of: ` +
		strings.Join(KnownStrategies(), ", ") + `)`}
	if diff := cmp.Diff(want, errLines(t, err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestAccessLogFieldsAndSample(t *testing.T) {
	const one = "servers: [{url: http://a}]\n"
	if _, err := Parse("t.yaml", []byte(one+"logging: {access_log_fields: [method, stauts], access_log_sample: 0.1}\n")); err == nil ||
		!strings.Contains(err.Error(), `t.yaml:2:39: logging.access_log_fields[1]: no field "stauts", did you mean "status"?`) {
		t.Errorf("misspelt field: %v", err)
	}
	if _, err := Parse("t.yaml", []byte(one+"logging: {access_log_sample: 1.5}\n")); err == nil || !strings.Contains(err.Error(), "access_log_sample") {
		t.Errorf("sample 1.5: %v", err)
	}
	c, err := Parse("t.yaml", []byte(one+"logging: {access_log_fields: [status, path], access_log_sample: 0.25}\n"))
	if err != nil || c.Logging.AccessLogSample != 0.25 || len(c.Logging.AccessLogFields) != 2 {
		t.Errorf("valid: %+v, %v", c, err)
	}
}

func TestAllowedUpgradesRefuseH2CAndNonTokens(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"client: {allowed_upgrades: [websocket, h2c]}\n", "t.yaml:2:40: client.allowed_upgrades[1]: h2c is never tunnelled"},
		{"client: {allowed_upgrades: [\"web socket\"]}\n", "client.allowed_upgrades[0]: \"web socket\" is not a protocol name"},
	} {
		_, err := Parse("t.yaml", []byte("servers: [{url: http://a}]\n"+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	cfg, err := Parse("t.yaml", []byte("servers: [{url: http://a}]\nclient: {allowed_upgrades: []}\n"))
	if err != nil || cfg.Client.AllowedUpgrades == nil || len(cfg.Client.AllowedUpgrades) != 0 {
		t.Errorf("an empty list must stay empty (no upgrade at all): %v, %#v", err, cfg)
	}
}
