package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fetcher GETs small JSON documents from one issuer.
type fetcher struct {
	client   *http.Client
	maxBytes int64
}

// maxRedirects bounds same-origin redirects.
const maxRedirects = 3

func newFetcher(rootCAs *x509.CertPool, timeout time.Duration, maxBytes int64, loopback, private bool) *fetcher {
	dialer := &net.Dialer{
		Timeout: timeout,
		// Control sees the address actually dialled, after name
		// resolution, so a name that resolves (or rebinds) to a forbidden
		// address is refused too.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("unexpected dial address: %w", err)
			}
			return checkAddr(ap.Addr(), loopback, private)
		},
	}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would dial for us, past the address check
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rootCAs},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 32 << 10,
		DisableCompression:     true,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("too many redirects")
			}
			if !sameOrigin(req.URL, via[0].URL) {
				return errors.New("redirect to another origin refused")
			}
			return nil
		},
	}
	return &fetcher{client: client, maxBytes: maxBytes}
}

// Special-purpose ranges (RFC 6890 and successors) that are neither
// loopback nor RFC 1918/4193 private, and that Ward never connects to.
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: could embed any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("2001::/32"),      // Teredo: embeds IPv4
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds IPv4
}

// sharedAddressSpace (RFC 6598, carrier-grade NAT) is treated as private.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// checkAddr decides whether Ward may connect to ip: a public unicast
// address always, loopback and private addresses only when allowed,
// anything else (link-local, multicast, unspecified, reserved) never.
func checkAddr(ip netip.Addr, loopback, private bool) error {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		if loopback {
			return nil
		}
		return errors.New("loopback address refused")
	case ip.IsPrivate() || sharedAddressSpace.Contains(ip):
		if private {
			return nil
		}
		return errors.New("private address refused")
	case !ip.IsGlobalUnicast() || ip.IsLinkLocalUnicast():
		return errors.New("non-unicast or link-local address refused")
	}
	for _, p := range refusedPrefixes {
		if p.Contains(ip) {
			return errors.New("special-purpose address refused")
		}
	}
	return nil
}

// getJSON fetches a JSON document: status 200, a JSON media type (or one
// of extra), at most maxBytes.
func (f *fetcher) getJSON(ctx context.Context, u string, extra ...string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errors.New("bad request URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, scrubURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !slices.Contains(extra, mt)) {
		return nil, errors.New("content type is not JSON")
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("response larger than %d bytes", f.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, scrubURLError(err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, fmt.Errorf("response larger than %d bytes", f.maxBytes)
	}
	return body, nil
}

// scrubURLError keeps the cause of a failed request without repeating the
// URL (the caller says which document it was).
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// discoveryDoc is what Ward reads of an issuer's discovery document:
// jwks_uri for its keys, and the endpoints of the sign-in flow (unchecked
// here; endpoints checks them).
type discoveryDoc struct {
	jwksURI       string
	authorization string
	token         string
}

// discover reads the issuer's discovery document. It checks that the
// document names this issuer exactly (OpenID Connect Discovery 1.0
// section 4.3) and that jwks_uri is https on the issuer's origin unless
// cross-origin key sets are allowed.
func (f *fetcher) discover(ctx context.Context, is *Issuer) (discoveryDoc, error) {
	body, err := f.getJSON(ctx, strings.TrimSuffix(is.URL, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return discoveryDoc{}, fmt.Errorf("discovery: %w", err)
	}
	if err := checkJSON(body); err != nil {
		return discoveryDoc{}, fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return discoveryDoc{}, errors.New("discovery: malformed document")
	}
	if doc.Issuer != is.URL {
		return discoveryDoc{}, errors.New("discovery: document names another issuer")
	}
	ju, err := checkURL(doc.JWKSURI)
	if err != nil {
		return discoveryDoc{}, fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	iu, _ := url.Parse(is.URL) // checked by New
	if !is.AllowCrossOriginJWKS && !sameOrigin(ju, iu) {
		return discoveryDoc{}, errors.New("discovery: jwks_uri is on another origin than the issuer")
	}
	if err := checkHost(ju, is.AllowLoopback, is.AllowPrivateNetworks); err != nil {
		return discoveryDoc{}, fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	// The sign-in endpoints are read apart, so that a document whose
	// endpoints are malformed still serves keys for access tokens.
	var eps struct {
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
	}
	_ = json.Unmarshal(body, &eps)
	return discoveryDoc{jwksURI: doc.JWKSURI, authorization: eps.Authorization, token: eps.Token}, nil
}
