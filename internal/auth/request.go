package auth

import (
	"crypto/x509"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// TokenRequest is a parsed request to the token endpoint. It holds the
// client secret in the clear: String redacts it, and it should not live
// longer than the request.
type TokenRequest struct {
	GrantType           string
	ClientID            string
	ClientSecret        string
	Scope               string
	ClientAssertionType string
	ClientAssertion     string
	BasicAuth           bool // the credentials came in an Authorization: Basic header
	// ClientCert is the certificate the client presented in the TLS
	// handshake (whose key it proved to hold), or nil. It authenticates a
	// client registered with certificates, and binds the token.
	ClientCert *x509.Certificate
}

// String describes the request without its secret or assertion.
func (r TokenRequest) String() string {
	return fmt.Sprintf("auth.TokenRequest{GrantType:%q ClientID:%q Scope:%q BasicAuth:%v secret:%v assertion:%v cert:%v}",
		r.GrantType, r.ClientID, r.Scope, r.BasicAuth, r.ClientSecret != "", r.ClientAssertion != "", r.ClientCert != nil)
}

// GoString redacts like String.
func (r TokenRequest) GoString() string { return r.String() }

// maxTokenBody bounds the token request body, whatever limit the caller set.
const maxTokenBody = 16 << 10

// ParseTokenRequest reads a token request: a POST with an
// application/x-www-form-urlencoded body of at most 16 KiB. The client
// authenticates with HTTP Basic (client_secret_basic; user and password are
// form-url-decoded first, RFC 6749 section 2.3.1) or with client_id and
// client_secret in the body (client_secret_post), not both, or with a
// signed assertion in client_assertion (private_key_jwt), or by the client
// certificate of the TLS connection, which also sets ClientCert.
// Parameters in the URL query are ignored: credentials never travel there.
// Every error is an *OAuthError.
func ParseTokenRequest(r *http.Request) (TokenRequest, error) {
	if r.Method != http.MethodPost {
		return TokenRequest{}, invalidRequest("the token endpoint takes POST")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return TokenRequest{}, invalidRequest("the body must be application/x-www-form-urlencoded")
	}
	if r.Body == nil {
		return TokenRequest{}, invalidRequest("empty body")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenBody+1))
	if err != nil {
		return TokenRequest{}, invalidRequest("unreadable body")
	}
	if len(body) > maxTokenBody {
		return TokenRequest{}, invalidRequest("body too large")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return TokenRequest{}, invalidRequest("malformed form body")
	}
	// The parameters read; others are ignored (RFC 6749 section 3.2).
	params := [...]string{"grant_type", "client_id", "client_secret", "scope", "client_assertion_type", "client_assertion"}
	var vals [len(params)]string
	for i, name := range params {
		v := form[name]
		if len(v) > 1 {
			return TokenRequest{}, invalidRequest("parameter " + name + " repeated")
		}
		if len(v) == 1 {
			vals[i] = v[0]
		}
	}
	req := TokenRequest{
		GrantType: vals[0], ClientID: vals[1], ClientSecret: vals[2], Scope: vals[3],
		ClientAssertionType: vals[4], ClientAssertion: vals[5],
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.ClientCert = r.TLS.PeerCertificates[0]
	}
	if req.ClientAssertion != "" && req.ClientSecret != "" {
		return TokenRequest{}, invalidRequest("more than one client authentication method")
	}
	if r.Header.Get("Authorization") == "" {
		return req, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return TokenRequest{}, invalidRequest("unsupported Authorization header")
	}
	if req.ClientSecret != "" || req.ClientAssertion != "" || req.ClientAssertionType != "" {
		return TokenRequest{}, invalidRequest("more than one client authentication method")
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return TokenRequest{}, invalidRequest("malformed Basic credentials")
	}
	if req.ClientID != "" && req.ClientID != id {
		return TokenRequest{}, invalidRequest("client_id does not match the Basic credentials")
	}
	req.ClientID, req.ClientSecret, req.BasicAuth = id, secret, true
	return req, nil
}

// splitScope splits an RFC 6749 scope parameter: scope tokens separated by
// single spaces.
func splitScope(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}
