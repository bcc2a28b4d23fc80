package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Policy is one entry of a route's policies list: a name and its settings,
// such as `headers: {response: {set: {X-Frame-Options: DENY}}}`. Exactly
// one field is set. The policies of a route run in the order listed,
// before its rate limit and its forwarder (docs/configuration.md).
type Policy struct {
	Headers     *HeadersPolicy     `yaml:"headers"`
	Redirect    *RedirectPolicy    `yaml:"redirect"`
	Rewrite     *RewritePolicy     `yaml:"rewrite"`
	IPFilter    *IPFilterPolicy    `yaml:"ip_filter"`
	BasicAuth   *BasicAuthPolicy   `yaml:"basic_auth"`
	CORS        *CORSPolicy        `yaml:"cors"`
	MaxBody     *Size              `yaml:"max_body"`
	Compress    *CompressPolicy    `yaml:"compress"`
	ForwardAuth *ForwardAuthPolicy `yaml:"forward_auth"`
	Sticky      *StickyPolicy      `yaml:"sticky"`
	Mirror      *MirrorPolicy      `yaml:"mirror"`
	// Custom is a policy a custom build registered (RegisterPolicy).
	Custom *CustomPolicy `yaml:"-"`
}

// Name returns the policy's key in the config, such as "headers".
func (p Policy) Name() string {
	if p.Custom != nil {
		return p.Custom.Name
	}
	v := reflect.ValueOf(p)
	fs := fieldsOf(v.Type())
	for _, name := range fs.names {
		if f := v.FieldByIndex(fs.byName[name]); !f.IsNil() {
			return name
		}
	}
	return ""
}

// CustomPolicy is a registered policy as a config names it.
type CustomPolicy struct {
	Name string
	// Settings is a pointer to a new value of the type given to
	// RegisterPolicy, decoded from the policy's block like any built-in
	// key: unknown keys, wrong types and ${VAR} are handled the same way.
	Settings any
}

// HeadersPolicy edits the request's header before it is forwarded and the
// response's before it is relayed.
type HeadersPolicy struct {
	Request  HeaderRules `yaml:"request"`
	Response HeaderRules `yaml:"response"`
}

// HeaderRules are the edits to one header: fields removed, then set
// (replacing any value), then added (appended to any value).
type HeaderRules struct {
	Set    map[string]string `yaml:"set"`
	Add    map[string]string `yaml:"add"`
	Remove []string          `yaml:"remove"`
}

// RedirectPolicy answers every request with a redirect instead of
// forwarding it. To may use {scheme}, {host}, {hostname}, {port}, {path},
// {query} and {uri} (path and query as the client sent them).
type RedirectPolicy struct {
	To   string `yaml:"to"`
	Code int    `yaml:"code"` // default 302
}

// RewritePolicy rewrites the request's path: the first match of PathRegex
// is replaced by Replace, in which $1 and ${name} name groups.
type RewritePolicy struct {
	PathRegex string `yaml:"path_regex"`
	Replace   string `yaml:"replace"`
}

// IPFilterPolicy lets a request through by its client's address: refused
// (403) when it is in Deny, or when Allow is not empty and it is not in
// Allow. The address is the connection's, or the one proxies in
// TrustedProxies say they forwarded for (X-Forwarded-For), as for rate
// limits.
type IPFilterPolicy struct {
	Allow          []string `yaml:"allow"`
	Deny           []string `yaml:"deny"`
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// BasicAuthPolicy asks for a user name and password (RFC 7617). Users maps
// names to bcrypt hashes ($2a$, $2b$ or $2y$): never a password in clear.
type BasicAuthPolicy struct {
	Realm string            `yaml:"realm"`
	Users map[string]string `yaml:"users"`
}

// CORSPolicy answers cross-origin preflights and marks answers to the
// listed origins as shareable (the Fetch standard's CORS protocol).
type CORSPolicy struct {
	Origins       []string `yaml:"origins"` // "*" for any
	Methods       []string `yaml:"methods"`
	Headers       []string `yaml:"headers"`
	ExposeHeaders []string `yaml:"expose_headers"`
	Credentials   bool     `yaml:"credentials"`
	MaxAge        Duration `yaml:"max_age"`
}

// CompressPolicy compresses answers the client accepts compressed.
type CompressPolicy struct {
	Algorithms []string `yaml:"algorithms"` // preference order; default zstd, br, gzip
	MinSize    Size     `yaml:"min_size"`   // default 1KiB
	Types      []string `yaml:"types"`      // default text/*, application/json, application/javascript, ...
}

// ForwardAuthPolicy asks another service whether a request may go on: the
// proxy sends it the request's method, URI and header (as Traefik's
// forwardAuth does); a 2xx lets the request through, with the listed
// fields of that answer copied onto it, and any other answer goes back to
// the client as it came.
type ForwardAuthPolicy struct {
	URL         string   `yaml:"url"`
	CopyHeaders []string `yaml:"copy_headers"`
	Timeout     Duration `yaml:"timeout"` // default 5s
}

// StickyPolicy keeps a client on one server with a cookie naming it (an
// opaque id, not its address): the server picked for a client's first
// request is kept for the next ones while it is usable, and the cookie
// moves when it is not.
type StickyPolicy struct {
	Cookie   string   `yaml:"cookie"`
	TTL      Duration `yaml:"ttl"` // 0: a session cookie
	Secure   bool     `yaml:"secure"`
	HTTPOnly bool     `yaml:"http_only"`
	SameSite string   `yaml:"same_site"` // lax, strict or none; default lax
}

// MirrorPolicy sends a copy of a share of the requests to another
// upstream and ignores its answers: its latency and failures never reach
// the client.
type MirrorPolicy struct {
	Upstream string   `yaml:"upstream"`
	Percent  *float64 `yaml:"percent"` // default 100
}

// Compression algorithms compress knows, in the default order of
// preference.
var CompressAlgorithms = []string{"zstd", "br", "gzip"}

// DefaultCompressTypes are the media types compressed when a compress
// policy lists none.
var DefaultCompressTypes = []string{"text/*", "application/json", "application/javascript",
	"application/xml", "application/wasm", "image/svg+xml"}

// registered policies: name → the type of their settings.
var (
	policiesMu sync.RWMutex
	policies   = map[string]reflect.Type{}
)

// RegisterPolicy makes name a policy a route may list, with settings
// decoded into a new value of settings' type (a pointer to a struct), so
// its block gets the same errors and positions as built-in keys. If that
// type has a method Validate() error, a non-nil error is reported at the
// policy's position. policy.Register calls it; call it before loading a
// config.
func RegisterPolicy(name string, settings any) {
	t := reflect.TypeOf(settings)
	if name == "" || t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic("config: RegisterPolicy needs a name and a pointer to a struct")
	}
	if _, builtin := fieldsOf(reflect.TypeFor[Policy]()).byName[name]; builtin {
		panic("config: RegisterPolicy: " + name + " is a built-in policy")
	}
	policiesMu.Lock()
	defer policiesMu.Unlock()
	policies[name] = t.Elem()
}

// PolicyNames lists the built-in and registered policy names, sorted.
func PolicyNames() []string {
	names := slices.Clone(fieldsOf(reflect.TypeFor[Policy]()).names)
	policiesMu.RLock()
	for n := range policies {
		names = append(names, n)
	}
	policiesMu.RUnlock()
	sort.Strings(names)
	return names
}

var policyType = reflect.TypeFor[Policy]()

// policy decodes one entry of a policies list: a mapping with exactly one
// key, a built-in policy or a registered one.
func (w *walker) policy(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		w.errorf(n, path, "must be a policy and its settings, such as `headers: {...}`, not %s", describe(n))
		return
	}
	pairs := w.pairs(n, path)
	if len(pairs) != 1 {
		w.errorf(n, path, "a list entry holds one policy; write each of %d on its own line starting with -", len(pairs))
		return
	}
	p := pairs[0]
	name := p.key.Value
	sub := joinPath(path, name)
	if f, ok := fieldsOf(policyType).byName[name]; ok {
		w.decode(p.val, v.FieldByIndex(f), sub)
		return
	}
	policiesMu.RLock()
	t := policies[name]
	policiesMu.RUnlock()
	if t == nil {
		w.errorf(p.key, sub, "unknown policy%s", didYouMean(suggest(name, PolicyNames())))
		return
	}
	settings := reflect.New(t)
	w.pos.at[sub] = Pos{p.val.Line, p.val.Column}
	if !isNull(p.val) {
		w.decode(p.val, settings.Elem(), sub)
	}
	v.FieldByName("Custom").Set(reflect.ValueOf(&CustomPolicy{Name: name, Settings: settings.Interface()}))
}

// policies checks a route's policies; p is "routes[N].".
func (c *checker) policies(p string, list []Policy) {
	for i, pol := range list {
		at := fmt.Sprintf("%spolicies[%d].%s", p, i, pol.Name())
		switch {
		case pol.Headers != nil:
			for _, part := range []struct {
				name  string
				rules HeaderRules
			}{{"request", pol.Headers.Request}, {"response", pol.Headers.Response}} {
				c.headerRules(at+"."+part.name, part.rules, part.name == "request")
			}
		case pol.Redirect != nil:
			r := pol.Redirect
			if r.To == "" {
				c.errf(at+".to", "required: where to send the client, such as \"https://{host}{uri}\"")
			} else if msg := checkTemplate(r.To, TemplateFields); msg != "" {
				c.errf(at+".to", "%s", msg)
			}
			if r.Code != 0 && !slices.Contains([]int{301, 302, 303, 307, 308}, r.Code) {
				c.errf(at+".code", "must be 301, 302, 303, 307 or 308, not %d", r.Code)
			}
		case pol.Rewrite != nil:
			if pol.Rewrite.PathRegex == "" {
				c.errf(at+".path_regex", "required: the part of the path to replace, such as \"^/old/(.*)\"")
			} else if _, err := regexp.Compile(pol.Rewrite.PathRegex); err != nil {
				c.errf(at+".path_regex", "not a regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		case pol.IPFilter != nil:
			f := pol.IPFilter
			if len(f.Allow) == 0 && len(f.Deny) == 0 {
				c.errf(at, "needs allow or deny, a list of addresses or CIDRs such as 10.0.0.0/8")
			}
			for _, l := range []struct {
				key  string
				list []string
			}{{"allow", f.Allow}, {"deny", f.Deny}, {"trusted_proxies", f.TrustedProxies}} {
				for j, s := range l.list {
					if _, err := ParsePrefix(s); err != nil {
						c.errf(fmt.Sprintf("%s.%s[%d]", at, l.key, j), "%s is not an IP address or CIDR such as 10.0.0.0/8", quote(s))
					}
				}
			}
		case pol.BasicAuth != nil:
			if len(pol.BasicAuth.Users) == 0 {
				c.errf(at+".users", "required: at least one user with a bcrypt hash (htpasswd -nbB USER PASSWORD)")
			}
			for user, hash := range pol.BasicAuth.Users {
				if user == "" || strings.ContainsAny(user, ":") {
					c.errf(at+".users", "user %s: a name must be non-empty and have no colon (RFC 7617)", quote(user))
				}
				if !isBcrypt(hash) {
					c.errf(at+".users."+user, "must be a bcrypt hash ($2y$...), never a password in clear: make one with htpasswd -nbB USER PASSWORD")
				}
			}
		case pol.CORS != nil:
			cors := pol.CORS
			if len(cors.Origins) == 0 {
				c.errf(at+".origins", "required: the origins allowed, such as https://app.example.com, or \"*\"")
			}
			for j, o := range cors.Origins {
				if o == "*" {
					if cors.Credentials {
						c.errf(fmt.Sprintf("%s.origins[%d]", at, j), "\"*\" cannot go with credentials: true (the Fetch standard forbids it); list the origins")
					}
					continue
				}
				if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
					c.errf(fmt.Sprintf("%s.origins[%d]", at, j), "%s is not an origin such as https://app.example.com", quote(o))
				}
			}
			c.nonNegative(at+".max_age", cors.MaxAge)
		case pol.MaxBody != nil:
			if *pol.MaxBody <= 0 {
				c.errf(at, "must be a size greater than 0, such as 10MiB")
			}
		case pol.Compress != nil:
			for j, a := range pol.Compress.Algorithms {
				if !slices.Contains(CompressAlgorithms, a) {
					c.errf(fmt.Sprintf("%s.algorithms[%d]", at, j), "unknown algorithm %s (one of: %s)", quote(a), strings.Join(CompressAlgorithms, ", "))
				}
			}
			for j, t := range pol.Compress.Types {
				if !strings.Contains(t, "/") {
					c.errf(fmt.Sprintf("%s.types[%d]", at, j), "%s is not a media type such as text/html or text/*", quote(t))
				}
			}
		case pol.ForwardAuth != nil:
			fa := pol.ForwardAuth
			if u, err := url.Parse(fa.URL); fa.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				c.errf(at+".url", "must be an http:// or https:// URL of the auth service, such as http://auth:9000/check")
			}
			for j, name := range fa.CopyHeaders {
				if !validFieldName(name) {
					c.errf(fmt.Sprintf("%s.copy_headers[%d]", at, j), "%s is not a header field name", quote(name))
				}
			}
			c.nonNegative(at+".timeout", fa.Timeout)
		case pol.Sticky != nil:
			st := pol.Sticky
			if st.Cookie == "" {
				c.errf(at+".cookie", "required: the cookie's name, such as srv")
			} else if !validFieldName(st.Cookie) {
				c.errf(at+".cookie", "%s is not a cookie name", quote(st.Cookie))
			}
			c.nonNegative(at+".ttl", st.TTL)
			if s := strings.ToLower(st.SameSite); s != "" && s != "lax" && s != "strict" && s != "none" {
				c.errf(at+".same_site", "must be lax, strict or none, not %s", quote(st.SameSite))
			} else if s == "none" && !st.Secure {
				c.errf(at+".same_site", "none needs secure: true (browsers drop such a cookie otherwise)")
			}
		case pol.Mirror != nil:
			m := pol.Mirror
			if m.Upstream == "" {
				c.errf(at+".upstream", "required: the upstream that gets the copies")
			} else if !slices.Contains(c.upstreams, m.Upstream) {
				c.errf(at+".upstream", "no upstream named %s%s", quote(m.Upstream), didYouMean(suggest(m.Upstream, c.upstreams)))
			}
			if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
				c.errf(at+".percent", "must be between 0 and 100, not %v", *m.Percent)
			}
		case pol.Custom != nil:
			if v, ok := pol.Custom.Settings.(interface{ Validate() error }); ok {
				if err := v.Validate(); err != nil {
					c.errf(at, "%s", err.Error())
				}
			}
		}
	}
}

// headerRules checks one side's edits; request values may hold
// placeholders (HeaderTemplateFields), response values are literal.
func (c *checker) headerRules(at string, r HeaderRules, request bool) {
	for _, m := range []struct {
		key string
		set map[string]string
	}{{"set", r.Set}, {"add", r.Add}} {
		for name, value := range m.set {
			if !validFieldName(name) {
				c.errf(at+"."+m.key, "%s is not a header field name", quote(name))
			}
			if strings.ContainsAny(value, "\r\n\x00") {
				c.errf(at+"."+m.key+"."+name, "a header value cannot hold a line break or NUL")
			}
			if request {
				if msg := checkTemplate(value, HeaderTemplateFields); msg != "" {
					c.errf(at+"."+m.key+"."+name, "%s", msg)
				}
			}
		}
	}
	for j, name := range r.Remove {
		if !validFieldName(name) {
			c.errf(fmt.Sprintf("%s.remove[%d]", at, j), "%s is not a header field name", quote(name))
		}
	}
}

// validFieldName reports whether s is an HTTP field name (RFC 9110 §5.1: a
// token).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// TemplateFields are the placeholders a redirect's target may use.
var TemplateFields = []string{"scheme", "host", "hostname", "port", "path", "query", "uri"}

// HeaderTemplateFields are the placeholders a request header's value in
// a headers policy may use: the request's, and the subject of the client
// certificate verified against tls.client_ca_file ("" without one), so
// that servers behind the proxy learn who the client is (issue 20).
var HeaderTemplateFields = append(slices.Clip(TemplateFields), "tls_client_subject")

// checkTemplate reports what is wrong with the placeholders of s, where
// those in fields may appear, or "".
func checkTemplate(s string, fields []string) string {
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			return ""
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "a { without its }"
		}
		if name := s[i+1 : i+j]; !slices.Contains(fields, name) {
			return fmt.Sprintf("unknown placeholder {%s}%s (one of: {%s})", name, didYouMean(suggest(name, fields)), strings.Join(fields, "}, {"))
		}
		s = s[i+j+1:]
	}
}

// isBcrypt reports whether s looks like a bcrypt hash: $2a$, $2b$ or $2y$,
// a two-digit cost and 53 characters of salt and hash.
func isBcrypt(s string) bool {
	return len(s) == 60 && (strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")) && s[6] == '$'
}

// ParsePrefix parses an address or a CIDR; an address is a prefix of its
// full length.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
