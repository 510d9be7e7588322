// Package notify delivers the notifications of FHIR Subscriptions
// (rest-hook) that package records decides and records: it keeps Ward
// from being turned against its own network (catalogue C6), signs each
// notification, and works the outbox with retries.
//
// What it guarantees:
//   - Endpoint safety. An endpoint is https, and every address its host
//     resolves to is a public unicast address: loopback, private
//     (RFC 1918, unique-local), link-local, carrier-grade NAT,
//     multicast, unspecified, documentation, benchmarking, reserved and
//     IPv4-embedding prefixes are refused, unless the operator's
//     allow-list covers them. The check runs when a Subscription is
//     written (Guard.CheckEndpoint) and again at every dial: the
//     transport resolves the host itself, checks every address, and
//     dials a checked address, with a net.Dialer Control hook refusing
//     anything else, so a DNS answer that changes after the write (DNS
//     rebinding) reaches nothing. No proxy is used, no redirect is
//     followed, every request has a deadline and at most 64 KiB of a
//     response is read.
//   - Signatures. Each request carries X-Ward-Signature: t=<unix
//     seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>, and
//     X-Ward-Subscription, X-Ward-Delivery with ids only (Sign, Verify).
//   - Delivery. A Dispatcher claims due outbox rows with a lease (a row
//     is never held by two replicas at once), asks records for each
//     (which decides as the owner and records the entry before anything
//     leaves), sends it, and deletes the row on a 2xx answer; otherwise
//     it retries with exponential backoff up to a bound, and keeps the
//     subscription's status and error (fixed phrases, never a response
//     body or PHI) in the store.
//
// What it does not do: decide what may be disclosed (package records
// does), or guarantee exactly-once delivery: a dispatcher that stops
// between sending and deleting a row leaves it to be sent again after
// its lease runs out (at least once): receivers that must not act twice
// deduplicate by the resource version a payload names.
package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrRefusedAddress is the error of an endpoint whose host resolves to
// an address Ward does not connect to.
var ErrRefusedAddress = errors.New("notify: the endpoint's address is not allowed")

// refused are the prefixes no endpoint may reach unless allow-listed:
// everything that is not public unicast. (IPv4-mapped IPv6 addresses are
// unmapped before they are checked.)
var refused = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network", unspecified
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local (cloud metadata services)
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"::ffff:0:0/96",   // IPv4-mapped (checked unmapped; a leftover is refused)
		"64:ff9b::/96",    // NAT64: embeds an IPv4 address
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard-only
		"2001::/23",       // IETF protocol assignments (Teredo and others)
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds an IPv4 address
		"fc00::/7",        // unique-local
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Resolver resolves a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// GuardConfig configures a Guard. The zero value refuses every special
// address and resolves with the system resolver.
type GuardConfig struct {
	// Allow lists prefixes an endpoint may reach although they are not
	// public (an operator's own receivers on a private network).
	Allow []netip.Prefix
	// Resolver resolves endpoint hosts; default net.DefaultResolver.
	Resolver Resolver
	// TLS is the client TLS configuration (its RootCAs verify endpoints'
	// certificates); nil uses the system pool.
	TLS *tls.Config
	// Timeout bounds one request, from dial to the end of the answer;
	// default 10 seconds.
	Timeout time.Duration
}

// Guard checks endpoints and dials them.
type Guard struct {
	allow    []netip.Prefix
	resolver Resolver
	tls      *tls.Config
	timeout  time.Duration
}

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig) *Guard {
	g := &Guard{allow: cfg.Allow, resolver: cfg.Resolver, timeout: cfg.Timeout}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.timeout <= 0 {
		g.timeout = 10 * time.Second
	}
	if cfg.TLS != nil {
		g.tls = cfg.TLS.Clone()
	} else {
		g.tls = &tls.Config{}
	}
	g.tls.MinVersion = tls.VersionTLS12
	return g
}

// ParseAllow reads an allow-list flag: comma-separated CIDR prefixes or
// single addresses.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("notify: allow-list entry %q is not an address or CIDR prefix", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("notify: allow-list entry %q is not a CIDR prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Allowed reports whether an endpoint may reach a:
// a public unicast address, or one the allow-list covers.
func (g *Guard) Allowed(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range refused {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// resolve returns the addresses of host, all of them allowed, or
// ErrRefusedAddress when any is not: a host with one bad address is not
// an endpoint.
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if addrs, err = g.resolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("notify: the endpoint's host does not resolve: %w", err)
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("notify: the endpoint's host has no address")
	}
	for _, a := range addrs {
		if !g.Allowed(a) {
			return nil, ErrRefusedAddress
		}
	}
	return addrs, nil
}

// CheckEndpoint admits an https endpoint whose host resolves to allowed
// addresses only (records.EndpointChecker).
func (g *Guard) CheckEndpoint(ctx context.Context, u *url.URL) error {
	if u == nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil {
		return errors.New("notify: the endpoint must be an https URL without user information")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("notify: the endpoint's port is not a port")
		}
	}
	_, err := g.resolve(ctx, u.Hostname())
	return err
}

// control refuses, at the socket, any address the guard does not allow:
// the last line against a dial that did not come through dial.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !g.Allowed(ap.Addr()) {
		return ErrRefusedAddress
	}
	return nil
}

// dial resolves the host itself, checks every address, and dials the
// checked ones in turn.
func (g *Guard) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("notify: dial: %w", err)
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Control: g.control, Timeout: g.timeout}
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Client returns an HTTP client that reaches allowed addresses only,
// through no proxy, following no redirect, under the guard's timeout.
func (g *Guard) Client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            g.dial,
			TLSClientConfig:        g.tls.Clone(),
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           16,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    g.timeout,
			ResponseHeaderTimeout:  g.timeout,
			MaxResponseHeaderBytes: 16 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       g.timeout,
	}
}
