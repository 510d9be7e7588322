package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// fakeResolver answers every name from a table; a name not in it does
// not resolve.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	l, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, s := range l {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// TestRefusedAddresses: every class of address that is not public
// unicast is refused at create (catalogue C6), as a literal and through
// a name that resolves to it; public addresses are admitted; the
// allow-list admits exactly what it covers.
func TestRefusedAddresses(t *testing.T) {
	refusedCases := []struct{ class, addr string }{
		{"loopback v4", "127.0.0.1"},
		{"loopback v4 other", "127.1.2.3"},
		{"loopback v6", "::1"},
		{"unspecified v4", "0.0.0.0"},
		{"this network", "0.1.2.3"},
		{"unspecified v6", "::"},
		{"private 10/8", "10.1.2.3"},
		{"private 172.16/12", "172.20.0.1"},
		{"private 192.168/16", "192.168.1.1"},
		{"carrier-grade NAT", "100.64.0.1"},
		{"link-local v4 (metadata)", "169.254.169.254"},
		{"link-local v6", "fe80::1"},
		{"unique-local v6", "fd00::1"},
		{"multicast v4", "224.0.0.1"},
		{"multicast v6", "ff02::1"},
		{"broadcast", "255.255.255.255"},
		{"reserved 240/4", "240.0.0.1"},
		{"documentation", "192.0.2.10"},
		{"benchmarking", "198.18.0.1"},
		{"IPv4-mapped loopback", "::ffff:127.0.0.1"},
		{"NAT64 of loopback", "64:ff9b::7f00:1"},
		{"6to4 of private", "2002:c0a8:0101::1"},
		{"site-local v6", "fec0::1"},
	}
	names := fakeResolver{"public.example": {"93.184.215.14"}, "mixed.example": {"93.184.215.14", "10.0.0.1"}}
	for _, tc := range refusedCases {
		names[hostOf(tc.class)] = []string{tc.addr}
	}
	g := NewGuard(GuardConfig{Resolver: names})
	ctx := context.Background()
	for _, tc := range refusedCases {
		t.Run(tc.class, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			if g.Allowed(a) {
				t.Fatalf("%s (%s) allowed", tc.class, tc.addr)
			}
			host := tc.addr
			if a.Is6() {
				host = "[" + host + "]"
			}
			for _, u := range []string{"https://" + host + "/hook", "https://" + hostOf(tc.class) + "/hook"} {
				if err := g.CheckEndpoint(ctx, mustURL(t, u)); !errors.Is(err, ErrRefusedAddress) {
					t.Errorf("%s admitted: %v", u, err)
				}
			}
		})
	}
	for _, u := range []string{"https://public.example/hook", "https://93.184.215.14:8443/hook", "https://[2606:4700::1111]/hook"} {
		if err := g.CheckEndpoint(ctx, mustURL(t, u)); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"http://public.example/hook", "file:///etc/passwd", "https://user:pw@public.example/", "https://mixed.example/", "https://unknown.example/", "https://public.example:0/", "ftp://public.example/"} {
		if err := g.CheckEndpoint(ctx, mustURL(t, u)); err == nil {
			t.Errorf("%s admitted", u)
		}
	}
	allow, err := ParseAllow("10.1.0.0/16, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ga := NewGuard(GuardConfig{Allow: allow})
	for addr, want := range map[string]bool{"10.1.2.3": true, "10.2.0.1": false, "127.0.0.1": true, "127.0.0.2": false, "::ffff:10.1.0.9": true} {
		if got := ga.Allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allow-listed guard: Allowed(%s) = %v", addr, got)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0.0/8,x"} {
		if _, err := ParseAllow(bad); err == nil {
			t.Errorf("ParseAllow(%q) accepted", bad)
		}
	}
}

// hostOf is a host name for a test class.
func hostOf(class string) string {
	return strings.NewReplacer(" ", "-", "/", "-", ".", "-", "(", "", ")", "").Replace(class) + ".example"
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestDialRefusesRebinding: a name that resolved to a public address
// when the subscription was written and resolves to loopback when it is
// dialled (DNS rebinding) reaches nothing; the local receiver is reached
// only once the allow-list covers it. No redirect is followed.
func TestDialRefusesRebinding(t *testing.T) {
	hits := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "https://169.254.169.254/latest/meta-data", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	tlsConf := &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"}
	names := fakeResolver{"rebind.example": {"93.184.215.14"}}
	g := NewGuard(GuardConfig{Resolver: names, TLS: tlsConf})
	u := mustURL(t, "https://rebind.example:"+itoa(port)+"/hook")
	if err := g.CheckEndpoint(context.Background(), u); err != nil {
		t.Fatalf("public at write time: %v", err)
	}
	names["rebind.example"] = []string{"127.0.0.1"}
	_, err := g.Client().Post(u.String(), "application/fhir+json", nil)
	if !errors.Is(err, ErrRefusedAddress) || hits != 0 {
		t.Fatalf("rebound name dialled: %v, %d hits", err, hits)
	}
	if p := transportProblem(err); p != "the endpoint's address is not allowed" {
		t.Fatalf("problem %q", p)
	}
	// A literal loopback URL is refused at the socket too.
	if _, err := g.Client().Get("https://127.0.0.1:" + itoa(port) + "/hook"); !errors.Is(err, ErrRefusedAddress) || hits != 0 {
		t.Fatalf("loopback literal dialled: %v", err)
	}
	allow, _ := ParseAllow("127.0.0.1")
	ga := NewGuard(GuardConfig{Resolver: names, TLS: tlsConf, Allow: allow})
	resp, err := ga.Client().Post(u.String(), "application/fhir+json", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent || hits != 1 {
		t.Fatalf("allow-listed receiver: %v, %v, %d hits", resp, err, hits)
	}
	resp.Body.Close()
	resp, err = ga.Client().Get("https://rebind.example:" + itoa(port) + "/redirect")
	if err != nil || resp.StatusCode != http.StatusFound || hits != 2 {
		t.Fatalf("redirect: %v, %v, %d hits; want the 302 itself", resp, err, hits)
	}
	resp.Body.Close()
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}
