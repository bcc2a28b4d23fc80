package policy

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/middleware"
)

// redirect answers every request with a redirect to its target, whose
// placeholders are the request's (config.TemplateFields). The answer has
// no body, as Caddy's; the client follows Location.
func redirect(p *config.RedirectPolicy) middleware.Middleware {
	code := p.Code
	if code == 0 {
		code = http.StatusFound
	}
	to := p.To
	return func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", expand(to, r))
			w.WriteHeader(code)
		})
	}
}

// expand fills a redirect target's placeholders from r.
func expand(tmpl string, r *http.Request) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		j := strings.IndexByte(tmpl[max(i, 0):], '}')
		if i < 0 || j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		b.WriteString(field(tmpl[i+1:i+j], r))
		tmpl = tmpl[i+j+1:]
	}
}

func field(name string, r *http.Request) string {
	switch name {
	case "tls_client_subject":
		// Only a chain verified against tls.client_ca_file names a client.
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			return r.TLS.VerifiedChains[0][0].Subject.String()
		}
		return ""
	case "scheme":
		if r.TLS != nil {
			return "https"
		}
		return "http"
	case "host":
		return r.Host
	case "hostname":
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			return h
		}
		return r.Host
	case "port":
		if _, p, err := net.SplitHostPort(r.Host); err == nil {
			return p
		}
		if r.TLS != nil {
			return "443"
		}
		return "80"
	case "path":
		return r.URL.EscapedPath()
	case "query":
		return r.URL.RawQuery
	case "uri":
		if r.URL.RawQuery == "" {
			return r.URL.EscapedPath()
		}
		return r.URL.EscapedPath() + "?" + r.URL.RawQuery
	}
	return ""
}

// rewrite replaces the first match of a regular expression in the
// request's path (as the client escaped it) before the request goes on.
// A result that is not a valid escaped path leaves the path as it was.
func rewrite(p *config.RewritePolicy) (middleware.Middleware, error) {
	re, err := regexp.Compile(p.PathRegex)
	if err != nil {
		return nil, fmt.Errorf("path_regex: %w", err)
	}
	replace := p.Replace
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			escaped := r.URL.EscapedPath()
			if m := re.FindStringSubmatchIndex(escaped); m != nil {
				out := escaped[:m[0]] + string(re.ExpandString(nil, replace, escaped, m)) + escaped[m[1]:]
				if !strings.HasPrefix(out, "/") {
					out = "/" + out
				}
				if path, err := url.PathUnescape(out); err == nil {
					u := *r.URL
					u.Path, u.RawPath = path, out
					if u.EscapedPath() != out {
						u.RawPath = ""
					}
					r.URL = &u
				}
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}
