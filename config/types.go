// Package config defines the proxy's YAML configuration: its types, their
// defaults, and validation that reports every error with file, line and
// column.
package config

import "time"

// Config is a whole configuration file after defaults are applied.
//
// The top-level Servers, LoadBalancing, HealthChecks, RateLimit, Retries,
// Timeouts and CircuitBreaker describe the default upstream (named
// DefaultUpstream) and its catch-all route.
type Config struct {
	Listen string `yaml:"listen"`
	TLS    *TLS   `yaml:"tls"`
	H2C    bool   `yaml:"h2c"`
	// HTTPRedirect is the address of a plain-HTTP listener that answers
	// every request with a 308 to the same host and URI over https; ""
	// means none. It needs tls.
	HTTPRedirect string `yaml:"http_redirect"`
	// HSTS, with tls, adds Strict-Transport-Security to every answer
	// over TLS.
	HSTS *HSTS `yaml:"hsts"`
	// HTTP3, with tls, also serves HTTP/3 over QUIC on the UDP port of
	// listen, and advertises it in Alt-Svc on the answers over TLS.
	HTTP3           bool     `yaml:"http3"`
	Admin           Admin    `yaml:"admin"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Watch reloads the config when its file changes.
	Watch     bool   `yaml:"watch"`
	Client    Client `yaml:"client"`
	Upstream  `yaml:",inline"`
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	Routes    []Route              `yaml:"routes"`
	Logging   Logging              `yaml:"logging"`
	Tracing   Tracing              `yaml:"tracing"`

	// File is the path the config was read from, for error messages and
	// reloads. It is not part of the YAML.
	File string `yaml:"-"`
	// Warnings are what validation found worth saying but not fatal, such
	// as a key the chosen strategy ignores; each prints as
	// FILE:LINE:COL: warning: message.
	Warnings ErrorList `yaml:"-"`

	// pos remembers where each setting was written, for Where.
	pos *positions
}

// DefaultUpstream is the name of the upstream described by the top-level
// keys, which the catch-all route sends to.
const DefaultUpstream = "default"

// TLS turns on TLS termination on the main listener; HTTP/2 is then offered
// through ALPN. The certificate comes from one of three places: files
// (CertFile and KeyFile), an ACME CA (ACME), or a local CA (Internal).
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ACME obtains and renews certificates from an ACME CA (RFC 8555),
	// such as Let's Encrypt, instead of reading files.
	ACME *ACME `yaml:"acme"`
	// Internal has a local CA issue the certificates, for development:
	// clients trust them only once told to trust the CA's root, which is
	// kept in acme.storage (or the default storage) as internal/root.pem.
	Internal bool `yaml:"internal"`
	// ClientCAFile, when set, makes client certificates required: only a
	// client presenting a certificate signed by one of these CAs (PEM)
	// completes the handshake (mTLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is the lowest TLS version offered: "1.2" (the default)
	// or "1.3".
	MinVersion string `yaml:"min_version"`
}

// ACME is where certificates come from when an ACME CA issues them, and
// how the proxy proves it controls the names.
type ACME struct {
	// Email is given to the CA for expiry and problem notices.
	Email string `yaml:"email"`
	// Domains are the names certificates are obtained for before the
	// listener serves them.
	Domains []string `yaml:"domains"`
	// OnDemand obtains a certificate at the first handshake that names a
	// host not in Domains, once the Ask URL allows it.
	OnDemand bool `yaml:"on_demand"`
	// Ask is asked GET ASK?domain=NAME before an on-demand certificate is
	// obtained; only a 2xx answer lets it go ahead. Required with
	// on_demand, so that anyone pointing a name at the proxy cannot spend
	// the CA's rate limits.
	Ask string `yaml:"ask"`
	// CA is the ACME directory URL; "" means Let's Encrypt's production
	// directory (DefaultACMECA).
	CA string `yaml:"ca"`
	// CARoot is a PEM file of roots trusted for the CA's own https
	// endpoint, for a private CA.
	CARoot string `yaml:"ca_root"`
	// Storage is the directory certificates, keys and the account are
	// kept in, and reused from across restarts; "" means
	// $XDG_DATA_HOME/proxy (or ~/.local/share/proxy).
	Storage string `yaml:"storage"`
	// Challenges are the ACME challenge types offered: "http-01"
	// (answered on http_redirect) and "tls-alpn-01" (answered on the TLS
	// listener). Empty means tls-alpn-01, and http-01 too when
	// http_redirect is set.
	Challenges []string `yaml:"challenges"`
}

// DefaultACMECA is Let's Encrypt's production directory, the CA used when
// tls.acme.ca is not set.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

// ACME challenge types (RFC 8555 §8.3 and RFC 8737).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// HSTS tells browsers to reach the site over https only (RFC 6797).
type HSTS struct {
	// MaxAge is how long browsers remember it, such as "365d".
	MaxAge Duration `yaml:"max_age"`
	// IncludeSubdomains extends it to every subdomain of the host.
	IncludeSubdomains bool `yaml:"include_subdomains"`
}

// ServerTLS is how the proxy speaks TLS to one https server: whom it
// trusts, which name it asks for and checks, and which certificate it
// shows when the server asks for one.
type ServerTLS struct {
	// CAFile holds the PEM certificates the server's chain must lead to,
	// instead of the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is sent as SNI and checked against the server's
	// certificate, instead of the host of the server's URL.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are the client certificate shown to a server
	// that asks for one (mTLS to the server).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify accepts any certificate the server shows. It is
	// logged at WARN at every start: it is for tests, never production.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Admin configures the admin listener (metrics, health, API, dashboard).
type Admin struct {
	// Listen is the admin address; nil means the default 127.0.0.1:9901 and
	// an explicit "" turns the admin listener off.
	Listen *string `yaml:"listen"`
	Token  string  `yaml:"token"`
	Pprof  bool    `yaml:"pprof"`
}

// Client holds limits on what clients may send the proxy.
type Client struct {
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers (slowloris protection).
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes keep-alive client connections idle this long.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes caps the size of request headers; larger gets 431.
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// FastPath is the switch of everything in the proxy that exists only
	// for speed: its own HTTP/1.1 parser and response writer for clients
	// (package h1, with the direct lane), its own upstream client for
	// body-less requests, and the scheduling and system-call tricks both
	// use. On by default; nil means unset. Off, clients are served by
	// net/http's server and servers reached through net/http's Transport
	// alone: the way back if the fast path is ever suspected of a fault.
	// The environment variable PROXY_FAST_PATH=off turns it off where the
	// file does not say (see FastPathOn).
	FastPath *bool `yaml:"fast_path"`
	// DirectLane forwards the plain requests the fast path reads head to
	// head, without building a net/http request for them; on by default
	// with the fast path, nil meaning unset. Off, they go through the
	// handler chain like any other (see docs/performance.md).
	DirectLane *bool `yaml:"direct_lane"`
	// AllowedUpgrades lists the protocols a client may switch to through
	// the proxy (Connection: Upgrade), compared without regard to case;
	// websocket by default. Another upgrade is forwarded as an ordinary
	// request without its Upgrade and Connection tokens: a tunnel carries
	// bytes no routing, header rewriting or rate limit sees afterwards.
	// h2c is never tunnelled (RFC 9113 §3.1 deprecates that upgrade).
	AllowedUpgrades []string `yaml:"allowed_upgrades"`
}

// FastPathOn reports whether the fast path serves (see FastPath).
func (c Client) FastPathOn() bool { return c.FastPath == nil || *c.FastPath }

// DirectLaneOn reports whether the direct lane serves: only with the fast
// path, which reads the heads it forwards.
func (c Client) DirectLaneOn() bool { return c.FastPathOn() && (c.DirectLane == nil || *c.DirectLane) }

// Upstream is a named group of servers with the policies that pick among
// them and guard them.
type Upstream struct {
	Servers        []Server        `yaml:"servers"`
	LoadBalancing  LoadBalancing   `yaml:"load_balancing"`
	HealthChecks   HealthChecks    `yaml:"health_checks"`
	RateLimit      *RateLimit      `yaml:"rate_limit"`
	Retries        Retries         `yaml:"retries"`
	Timeouts       Timeouts        `yaml:"timeouts"`
	CircuitBreaker *CircuitBreaker `yaml:"circuit_breaker"`
	// Protocol is what the proxy speaks to the servers: http1, h2c
	// (HTTP/2 over plain TCP, prior knowledge, as gRPC servers inside a
	// cluster expect), h2 (HTTP/2 over TLS, ALPN) or auto (h2 where an
	// https server offers it through ALPN, else HTTP/1.1); default auto.
	Protocol string `yaml:"protocol"`
	// Discovery adds servers found in DNS to Servers; named upstreams only.
	Discovery *Discovery `yaml:"discovery"`
}

// Discovery says where an upstream's servers are published.
type Discovery struct {
	DNS *DNSDiscovery `yaml:"dns"`
}

// DNSDiscovery finds servers in DNS: one per address of Name (A and AAAA
// records) on Port, or one per target of the SRV record SRV, whose
// weights and priorities become server weights and backups.
type DNSDiscovery struct {
	Name   string `yaml:"name"`
	SRV    string `yaml:"srv"`
	Port   int    `yaml:"port"`
	Scheme string `yaml:"scheme"`
	// Refresh is how often the name is looked up again; a record whose
	// TTL is shorter is looked up when it expires instead.
	Refresh Duration `yaml:"refresh"`
	// Resolver is the DNS server's host:port; empty means the servers of
	// /etc/resolv.conf.
	Resolver string `yaml:"resolver"`
	// SlowStart is the ramp of a server that appears after start-up.
	SlowStart Duration `yaml:"slow_start"`
	// MaxConnections caps each discovered server's concurrent requests.
	MaxConnections int `yaml:"max_connections"`
}

// Protocols are the values of an upstream's protocol.
var Protocols = []string{"http1", "h2c", "h2", "auto"}

// Server is one backend.
type Server struct {
	URL            string   `yaml:"url"`
	Name           string   `yaml:"name"`
	Weight         int      `yaml:"weight"`
	Backup         bool     `yaml:"backup"`
	MaxConnections int      `yaml:"max_connections"`
	SlowStart      Duration `yaml:"slow_start"`
	// TLS tunes TLS to an https server; nil means the system's roots and
	// the URL's host as the name.
	TLS *ServerTLS `yaml:"tls"`

	// Source is who put the server in the pool: "" for the config file,
	// SourceDNS for discovery. It is not part of the YAML.
	Source string `yaml:"-"`
}

// SourceDNS marks a server found by DNS discovery.
const SourceDNS = "dns"

// LoadBalancing chooses the strategy that picks a server per request.
type LoadBalancing struct {
	Strategy string `yaml:"strategy"`
	// HashKey is what consistent_hash hashes: ip, header:NAME, cookie:NAME
	// or uri.
	HashKey string `yaml:"hash_key"`
	// BoundedLoad is consistent_hash's ε: no server takes more than
	// (1+ε) times the mean in-flight load.
	BoundedLoad float64 `yaml:"bounded_load"`
	// Options is a custom strategy's own block (RegisterStrategyOptions).
	Options StrategyOptions `yaml:"options"`
}

// HealthChecks configures active probing and passive ejection.
type HealthChecks struct {
	// Enabled is nil unless set; active checks run when it is not false.
	Enabled  *bool    `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
	// FastInterval is the interval for a server whose state is unproven
	// or changing; one not below Interval turns the fast phase off.
	FastInterval       Duration `yaml:"fast_interval"`
	Timeout            Duration `yaml:"timeout"`
	Path               string   `yaml:"path"`
	Host               string   `yaml:"host"`
	ExpectedStatus     string   `yaml:"expected_status"`
	ExpectedBody       string   `yaml:"expected_body"`
	HealthyThreshold   int      `yaml:"healthy_threshold"`
	UnhealthyThreshold int      `yaml:"unhealthy_threshold"`
	Passive            *Passive `yaml:"passive"`
	// GRPC, when set, checks servers with grpc.health.v1.Health/Check
	// instead of an HTTP GET; the upstream must speak HTTP/2 (protocol
	// h2c or h2).
	GRPC *GRPCHealth `yaml:"grpc"`
}

// GRPCHealth configures gRPC health checks.
type GRPCHealth struct {
	// Service is the name asked about; "" asks about the server as a
	// whole.
	Service string `yaml:"service"`
}

// Passive ejects servers that fail live traffic (outlier detection). It is
// on unless Enabled is false, whether the section is written or not.
type Passive struct {
	// Enabled is nil unless set; ejection is on when it is not false.
	Enabled             *bool    `yaml:"enabled"`
	ConsecutiveFailures int      `yaml:"consecutive_failures"`
	EjectionTime        Duration `yaml:"ejection_time"`
	MaxEjectionTime     Duration `yaml:"max_ejection_time"`
	MaxEjectionPercent  int      `yaml:"max_ejection_percent"`
	// On5xx counts 5xx responses as failures, not only connection
	// failures.
	On5xx bool `yaml:"on_5xx"`
}

// RateLimit limits requests per key.
type RateLimit struct {
	RequestsPerSecond float64  `yaml:"requests_per_second"`
	Burst             int      `yaml:"burst"`
	Key               string   `yaml:"key"`
	Store             string   `yaml:"store"`
	Redis             Redis    `yaml:"redis"`
	OnStoreError      string   `yaml:"on_store_error"`
	TrustedProxies    []string `yaml:"trusted_proxies"`
}

// Redis locates the shared rate-limit store: one server, a Redis Cluster
// or the master a set of Sentinels names.
type Redis struct {
	// Address is one server; a synonym of a one-element Addresses.
	Address string `yaml:"address"`
	// Addresses are the cluster's seed nodes, or the Sentinels when
	// MasterName is set. More than one address without MasterName means
	// Cluster.
	Addresses []string `yaml:"addresses"`
	// MasterName, when set, asks the Sentinels at Addresses for the master
	// of that name.
	MasterName string `yaml:"master_name"`
	// Cluster forces Cluster mode with a single seed address (a cluster's
	// configuration endpoint).
	Cluster   bool      `yaml:"cluster"`
	Username  string    `yaml:"username"`
	Password  string    `yaml:"password"`
	DB        int       `yaml:"db"`
	KeyPrefix string    `yaml:"key_prefix"`
	Timeout   Duration  `yaml:"timeout"`
	TLS       *RedisTLS `yaml:"tls"`
}

// Addrs returns the addresses to connect to: Addresses, or Address alone.
func (r *Redis) Addrs() []string {
	if len(r.Addresses) > 0 {
		return r.Addresses
	}
	if r.Address != "" {
		return []string{r.Address}
	}
	return nil
}

// RedisTLS turns TLS on for the connections to Redis (Sentinels included).
// An empty section verifies the server against the system's roots.
type RedisTLS struct {
	// CAFile holds the PEM certificates that may sign the server's
	// certificate, instead of the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name checked in the server's certificate (default:
	// the host of the address dialled).
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are the client certificate, for servers that
	// ask for one (Redis' tls-auth-clients).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Retries says when a failed request is tried again on another server.
type Retries struct {
	// Attempts is how many more servers to try after the first; 0 is off.
	Attempts int `yaml:"attempts"`
	// Budget caps retries at this share of requests over ten seconds.
	Budget float64 `yaml:"budget"`
	// MinPerSecond is the floor of the budget: retries always allowed per
	// second, so a quiet upstream can still retry.
	MinPerSecond int `yaml:"min_per_second"`
	// OnStatus lists the statuses retried for idempotent requests.
	OnStatus []int `yaml:"on_status"`
	// MaxBodyBytes is the largest request body kept for a retry.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// PerTryTimeout bounds each attempt until response headers; 0 is none.
	PerTryTimeout Duration `yaml:"per_try_timeout"`
	// Backoff is the base of the jittered exponential wait between tries.
	Backoff Duration `yaml:"backoff"`
	// RetryOn lists the gRPC statuses, by name, that send a gRPC call to
	// another server when its server ended it with one before answering
	// anything: GRPCRetryOn holds the names. Setting it says the calls
	// may be made twice.
	RetryOn []string `yaml:"retry_on"`
}

// GRPCRetryOn are the names retries.retry_on takes, with their gRPC
// codes: only UNAVAILABLE, which a server sends for a call it could not
// take up (shutting down, overloaded), so that another may.
var GRPCRetryOn = map[string]int{"unavailable": 14}

// Timeouts bound the proxy's exchanges with servers.
type Timeouts struct {
	Connect        Duration `yaml:"connect"`
	ResponseHeader Duration `yaml:"response_header"`
	IdleConnection Duration `yaml:"idle_connection"`
}

// CircuitBreaker stops sending to a server that keeps failing.
type CircuitBreaker struct {
	// ConsecutiveFailures opens the circuit after this many failures in a
	// row.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// FailureRatio opens the circuit when this share of the requests in
	// Window failed, once there were MinRequests; 0 turns the rule off.
	FailureRatio float64  `yaml:"failure_ratio"`
	Window       Duration `yaml:"window"`
	MinRequests  int      `yaml:"min_requests"`
	// OpenTime is how long an open circuit refuses traffic before it lets
	// probe requests through (half-open).
	OpenTime Duration `yaml:"open_time"`
	// HalfOpenRequests is how many probe requests a half-open circuit lets
	// through at once; one success closes it, one failure opens it again.
	HalfOpenRequests int `yaml:"half_open_requests"`
}

// Route sends matching requests to an upstream. Routes are tried in order;
// the first match wins.
type Route struct {
	Name        string     `yaml:"name"`
	Match       Match      `yaml:"match"`
	Upstream    string     `yaml:"upstream"`
	StripPrefix bool       `yaml:"strip_prefix"`
	RateLimit   *RateLimit `yaml:"rate_limit"`
	// Fallback answers when no server of the upstream can.
	Fallback *Fallback `yaml:"fallback"`
	// Policies run in order on the route's requests, before its rate
	// limit (policies.go).
	Policies []Policy `yaml:"policies"`
}

// Fallback is what a route answers when no server can: a fixed answer, or
// another upstream (say, a maintenance page service).
type Fallback struct {
	Status   int               `yaml:"status"`
	Body     string            `yaml:"body"`
	Headers  map[string]string `yaml:"headers"`
	Upstream string            `yaml:"upstream"`
}

// Match selects requests by host and path. Empty fields match anything.
type Match struct {
	// Host is an exact host or a wildcard such as *.example.com.
	Host       string `yaml:"host"`
	PathPrefix string `yaml:"path_prefix"`
}

// Logging configures the process log and the access log.
type Logging struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// AccessLog is stdout, stderr, a file path, or off.
	AccessLog string `yaml:"access_log"`
	// AccessLogFields chooses the fields of an access log line; empty
	// means all of AccessLogFieldNames.
	AccessLogFields []string `yaml:"access_log_fields"`
	// AccessLogSample is the share of successful requests logged; errors
	// (5xx and the proxy's own failures) are always logged.
	AccessLogSample float64 `yaml:"access_log_sample"`
}

// AccessLogFieldNames are the fields an access log line can carry, in the
// order they are written.
var AccessLogFieldNames = []string{
	"method", "host", "path", "status", "bytes", "duration", "route",
	"upstream", "server", "request_id", "remote", "retries", "error",
	"tls_client_subject", "grpc_status", "proto",
}

// Tracing configures OpenTelemetry export.
type Tracing struct {
	OTLPEndpoint string  `yaml:"otlp_endpoint"`
	SampleRatio  float64 `yaml:"sample_ratio"`
}

// Duration is a time.Duration written in YAML as "10s" or "250ms".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written in YAML as 65536, "64KiB" or "1MiB".
type Size int64
