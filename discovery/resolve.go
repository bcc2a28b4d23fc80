// Package discovery finds an upstream's servers in DNS: the addresses of a
// name (A and AAAA records) or the targets of an SRV record, looked up
// again every refresh, or sooner when the records' TTL says so.
//
// It knows nothing of the proxy: a Watcher reports each new set of
// targets through a callback, and the server turns them into servers.
package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// ErrEmpty is returned (wrapped) by a lookup that succeeded but found no
// address: a set no one should replace a working pool with.
var ErrEmpty = errors.New("no address found")

// Source is what to look up: Name on Port, or the SRV record SRV.
type Source struct {
	Name string
	Port int
	SRV  string
}

// String names the source in logs.
func (s Source) String() string {
	if s.SRV != "" {
		return "SRV " + s.SRV
	}
	return net.JoinHostPort(s.Name, strconv.Itoa(s.Port))
}

// Target is one server found in DNS.
type Target struct {
	Addr netip.Addr
	Port int
	// Weight is the SRV weight, at least 1 (RFC 2782's 0, "very small
	// chance", is rounded up: a server in the set gets traffic); 1 for
	// A and AAAA records.
	Weight int
	// Backup is set for SRV targets whose priority is not the lowest in
	// the set: RFC 2782 has clients try them only when the lower ones
	// fail, which is what a backup server is.
	Backup bool
}

// HostPort is the target's address as a URL host.
func (t Target) HostPort() string {
	return net.JoinHostPort(t.Addr.String(), strconv.Itoa(t.Port))
}

// Resolver looks names up on a DNS server. The zero value asks the
// servers of /etc/resolv.conf.
type Resolver struct {
	// Server is the DNS server's host:port; empty means /etc/resolv.conf.
	Server string
	// Timeout bounds each query; 0 means 2 seconds.
	Timeout time.Duration

	// exchange sends one query; nil means over the network. Tests set it
	// to answer from a message they build.
	exchange func(ctx context.Context, m *dns.Msg, server, network string, timeout time.Duration) (*dns.Msg, error)
}

// Lookup resolves src into targets, sorted, and the time until the first
// of the records used expires. A lookup that finds nothing returns an
// error wrapping ErrEmpty.
func (r *Resolver) Lookup(ctx context.Context, src Source) ([]Target, time.Duration, error) {
	if src.SRV == "" {
		addrs, ttl, err := r.addrs(ctx, src.Name)
		if err != nil {
			return nil, 0, err
		}
		out := make([]Target, len(addrs))
		for i, a := range addrs {
			out[i] = Target{Addr: a, Port: src.Port, Weight: 1}
		}
		return sortTargets(out), ttl, nil
	}
	resp, err := r.query(ctx, src.SRV, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	ttl := minTTL(resp.Answer)
	var srvs []*dns.SRV
	for _, rr := range resp.Answer {
		if s, ok := rr.(*dns.SRV); ok && s.Target != "." {
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return nil, 0, fmt.Errorf("discovery: SRV %s: %w", src.SRV, ErrEmpty)
	}
	var out []Target
	// prio holds each target's SRV priority, beside out.
	var prio []uint16
	for _, s := range srvs {
		addrs, t, err := r.addrs(ctx, s.Target)
		if errors.Is(err, ErrEmpty) {
			// One target without an address does not spoil the others.
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		ttl = shorter(ttl, t)
		for _, a := range addrs {
			out = append(out, Target{Addr: a, Port: int(s.Port), Weight: max(int(s.Weight), 1)})
			prio = append(prio, s.Priority)
		}
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("discovery: SRV %s: targets have no address: %w", src.SRV, ErrEmpty)
	}
	// The primaries are the lowest priority among the targets that have
	// an address: when all of the lowest have none, the next ones are
	// what RFC 2782 has a client try, not a pool of backups alone.
	best := slices.Min(prio)
	for i := range out {
		out[i].Backup = prio[i] != best
	}
	return sortTargets(out), ttl, nil
}

// addrs looks up the A and AAAA records of name.
func (r *Resolver) addrs(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	var out []netip.Addr
	ttl := time.Duration(-1)
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, err := r.query(ctx, name, qt)
		if err != nil {
			return nil, 0, err
		}
		for _, rr := range resp.Answer {
			var a netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				a, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				a, _ = netip.AddrFromSlice(rr.AAAA.To16())
			default:
				continue
			}
			if !a.IsValid() {
				continue
			}
			out = append(out, a.Unmap())
			ttl = shorter(ttl, time.Duration(rr.Header().Ttl)*time.Second)
		}
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("discovery: %s: %w", name, ErrEmpty)
	}
	return out, ttl, nil
}

// query asks the first server that answers, over UDP and again over TCP
// when the answer was truncated (RFC 1035 section 4.2.1).
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	servers := []string{r.Server}
	if r.Server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("discovery: reading the system's resolver: %w", err)
		}
		servers = servers[:0]
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, errors.New("discovery: /etc/resolv.conf names no nameserver")
		}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	var last error
	for _, srv := range servers {
		ask := r.exchange
		if ask == nil {
			ask = exchange
		}
		resp, err := ask(ctx, m, srv, "udp", timeout)
		if err == nil && resp.Truncated {
			resp, err = ask(ctx, m, srv, "tcp", timeout)
		}
		if err != nil {
			last = fmt.Errorf("discovery: %s %s at %s: %w", dns.TypeToString[qtype], name, srv, err)
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			// NXDOMAIN is an answer: the name has no address. The caller
			// sees an empty set and keeps the last good one.
			return resp, nil
		}
		last = fmt.Errorf("discovery: %s %s at %s: %s", dns.TypeToString[qtype], name, srv, dns.RcodeToString[resp.Rcode])
	}
	return nil, last
}

func exchange(ctx context.Context, m *dns.Msg, server, network string, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	return resp, err
}

// shorter is the shorter of two TTLs, where a negative one is unknown.
func shorter(a, b time.Duration) time.Duration {
	if a < 0 || (b >= 0 && b < a) {
		return b
	}
	return a
}

// minTTL is the shortest TTL of rrs, or -1 when there is none.
func minTTL(rrs []dns.RR) time.Duration {
	ttl := time.Duration(-1)
	for _, rr := range rrs {
		ttl = shorter(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	return ttl
}

func sortTargets(ts []Target) []Target {
	slices.SortFunc(ts, func(a, b Target) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		// A total order, so that one answer always makes the same set
		// and the watcher sees no change where there is none.
		if a.Backup != b.Backup {
			if a.Backup {
				return 1
			}
			return -1
		}
		return cmp.Compare(b.Weight, a.Weight)
	})
	// The same address may come twice (two SRV records, or a CNAME
	// chain): one server, the first in that order (a primary before a
	// backup, the heavier weight).
	return slices.CompactFunc(ts, func(a, b Target) bool { return a.Addr == b.Addr && a.Port == b.Port })
}
