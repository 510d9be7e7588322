package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

func tokenHTTP(method, ctype, body string, header map[string]string) *http.Request {
	r := httptest.NewRequest(method, "https://127.0.0.1:8443/oauth2/token", strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return r
}

func basic(user, pass string) map[string]string {
	r := httptest.NewRequest("POST", "/", nil)
	r.SetBasicAuth(user, pass)
	return map[string]string{"Authorization": r.Header.Get("Authorization")}
}

func TestParseTokenRequest(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name    string
		req     *http.Request
		want    TokenRequest
		wantErr bool
	}{
		{"post credentials", tokenHTTP("POST", form, "grant_type=client_credentials&client_id=ward-a&client_secret=s3cr%2Bt&scope=system%2FPatient.rs+system%2F*.s", nil),
			TokenRequest{GrantType: "client_credentials", ClientID: "ward-a", ClientSecret: "s3cr+t", Scope: "system/Patient.rs system/*.s"}, false},
		{"basic credentials", tokenHTTP("POST", form+"; charset=UTF-8", "grant_type=client_credentials", basic("ward-a", "pw")),
			TokenRequest{GrantType: "client_credentials", ClientID: "ward-a", ClientSecret: "pw", BasicAuth: true}, false},
		{"basic credentials are form-url-decoded", tokenHTTP("POST", form, "grant_type=client_credentials", basic(url.QueryEscape("id:with colon"), url.QueryEscape("p%w+d:x"))),
			TokenRequest{GrantType: "client_credentials", ClientID: "id:with colon", ClientSecret: "p%w+d:x", BasicAuth: true}, false},
		{"basic with matching client_id", tokenHTTP("POST", form, "grant_type=client_credentials&client_id=ward-a", basic("ward-a", "pw")),
			TokenRequest{GrantType: "client_credentials", ClientID: "ward-a", ClientSecret: "pw", BasicAuth: true}, false},
		{"assertion fields carried", tokenHTTP("POST", form, "grant_type=client_credentials&client_assertion_type=t&client_assertion=a", nil),
			TokenRequest{GrantType: "client_credentials", ClientAssertionType: "t", ClientAssertion: "a"}, false},
		{"unknown parameters ignored", tokenHTTP("POST", form, "grant_type=client_credentials&foo=bar", nil),
			TokenRequest{GrantType: "client_credentials"}, false},
		{"url query ignored", tokenHTTP("POST", form, "grant_type=client_credentials", nil),
			TokenRequest{GrantType: "client_credentials"}, false},
		{"both basic and post", tokenHTTP("POST", form, "grant_type=client_credentials&client_secret=x", basic("ward-a", "pw")), TokenRequest{}, true},
		{"basic and assertion", tokenHTTP("POST", form, "grant_type=client_credentials&client_assertion=x", basic("ward-a", "pw")), TokenRequest{}, true},
		{"secret and assertion", tokenHTTP("POST", form, "client_secret=x&client_assertion=y", nil), TokenRequest{}, true},
		{"basic with other client_id", tokenHTTP("POST", form, "client_id=ward-b", basic("ward-a", "pw")), TokenRequest{}, true},
		{"malformed basic encoding", tokenHTTP("POST", form, "grant_type=client_credentials", basic("ward-a", "%zz")), TokenRequest{}, true},
		{"bearer authorization", tokenHTTP("POST", form, "grant_type=client_credentials", map[string]string{"Authorization": "Bearer abc"}), TokenRequest{}, true},
		{"json body", tokenHTTP("POST", "application/json", `{"grant_type":"client_credentials"}`, nil), TokenRequest{}, true},
		{"no content type", tokenHTTP("POST", "", "grant_type=client_credentials", nil), TokenRequest{}, true},
		{"multipart", tokenHTTP("POST", "multipart/form-data; boundary=x", "--x--", nil), TokenRequest{}, true},
		{"GET", tokenHTTP("GET", form, "", nil), TokenRequest{}, true},
		{"repeated parameter", tokenHTTP("POST", form, "grant_type=client_credentials&grant_type=password", nil), TokenRequest{}, true},
		{"malformed form", tokenHTTP("POST", form, "grant_type=%zz", nil), TokenRequest{}, true},
		{"oversized body", tokenHTTP("POST", form, "grant_type=client_credentials&scope="+strings.Repeat("a", 20<<10), nil), TokenRequest{}, true},
	}
	tests[6].req.URL.RawQuery = "client_secret=leaked&client_id=ward-x"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokenRequest(tt.req)
			if tt.wantErr {
				var oe *OAuthError
				if !errors.As(err, &oe) || oe.Code != "invalid_request" || oe.Status != 400 {
					t.Fatalf("error = %v, want invalid_request", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestTokenHappyPath(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		scope, want string
	}{
		{"", "system/Patient.rs system/Observation.cruds"},
		{"system/Patient.r", "system/Patient.r"},
		{"system/Patient.read system/Observation.c", "system/Patient.rs system/Observation.c"},
		{"system/Patient.r system/Patient.r", "system/Patient.r"},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			resp, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal(), Scope: tt.scope})
			if err != nil {
				t.Fatal(err)
			}
			if resp.TokenType != "Bearer" || resp.ExpiresIn != 300 || resp.Scope != tt.want {
				t.Fatalf("response %+v, want scope %q", resp, tt.want)
			}
			p, err := f.srv.Verify(ctx, resp.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p.Scopes {
				got = append(got, s.String())
			}
			if p.ClientID != f.id || p.Subject != f.id || p.TokenID == "" || strings.Join(got, " ") != tt.want ||
				!p.Expiry.Equal(f.clock.Now().Add(5*time.Minute)) {
				t.Fatalf("principal %+v", p)
			}
		})
	}
	a, _ := f.srv.Verify(ctx, f.token)
	resp, _ := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal()})
	b, _ := f.srv.Verify(ctx, resp.AccessToken)
	if a.TokenID == b.TokenID {
		t.Fatal("two tokens share a jti")
	}
}

func TestTokenErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	revoked, revokedSecret, err := f.srv.CreateClient(ctx, "old", []string{"system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.RevokeClient(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	good := func(mut func(*TokenRequest)) TokenRequest {
		r := TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal()}
		mut(&r)
		return r
	}
	const authFailed = "client authentication failed"
	tests := []struct {
		name   string
		req    TokenRequest
		code   string
		status int
		desc   string // exact description, when it matters
	}{
		{"no grant type", good(func(r *TokenRequest) { r.GrantType = "" }), "invalid_request", 400, ""},
		{"password grant", good(func(r *TokenRequest) { r.GrantType = "password" }), "unsupported_grant_type", 400, ""},
		{"authorization code grant", good(func(r *TokenRequest) { r.GrantType = "authorization_code" }), "unsupported_grant_type", 400, ""},
		{"unknown client", good(func(r *TokenRequest) { r.ClientID = "ward-aaaaaaaaaaaaaaaa" }), "invalid_client", 401, authFailed},
		{"wrong secret", good(func(r *TokenRequest) { r.ClientSecret = otherChar(f.secret.Reveal()) }), "invalid_client", 401, authFailed},
		{"revoked client", good(func(r *TokenRequest) { r.ClientID, r.ClientSecret = revoked.ID, revokedSecret.Reveal() }), "invalid_client", 401, authFailed},
		{"no secret", good(func(r *TokenRequest) { r.ClientSecret = "" }), "invalid_client", 401, authFailed},
		{"no client", good(func(r *TokenRequest) { r.ClientID, r.ClientSecret = "", "" }), "invalid_client", 401, authFailed},
		{"huge client id", good(func(r *TokenRequest) { r.ClientID = strings.Repeat("a", 1000) }), "invalid_client", 401, authFailed},
		{"assertion and secret", good(func(r *TokenRequest) {
			r.ClientAssertionType, r.ClientAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "x.y.z"
		}), "invalid_request", 400, ""},
		{"assertion for a secret client", good(func(r *TokenRequest) {
			r.ClientSecret, r.ClientAssertionType, r.ClientAssertion = "", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "x.y.z"
		}), "invalid_client", 401, ""},
		{"scope beyond client", good(func(r *TokenRequest) { r.Scope = "system/Patient.rsu" }), "invalid_scope", 400, ""},
		{"scope other type", good(func(r *TokenRequest) { r.Scope = "system/Encounter.r" }), "invalid_scope", 400, ""},
		{"scope wildcard beyond client", good(func(r *TokenRequest) { r.Scope = "system/*.r" }), "invalid_scope", 400, ""},
		{"scope other context", good(func(r *TokenRequest) { r.Scope = "patient/Patient.r" }), "invalid_scope", 400, ""},
		{"malformed scope", good(func(r *TokenRequest) { r.Scope = "system/Patient.sr" }), "invalid_scope", 400, ""},
		{"double space", good(func(r *TokenRequest) { r.Scope = "system/Patient.r  system/Patient.s" }), "invalid_scope", 400, ""},
		{"one good one bad", good(func(r *TokenRequest) { r.Scope = "system/Patient.r system/Encounter.r" }), "invalid_scope", 400, ""},
		{"query-restricted scope", good(func(r *TokenRequest) { r.Scope = "system/Observation.rs?category=laboratory" }), "invalid_scope", 400, ""},
		{"openid", good(func(r *TokenRequest) { r.Scope = "openid" }), "invalid_scope", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.srv.Token(ctx, tt.req)
			var oe *OAuthError
			if !errors.As(err, &oe) || oe.Code != tt.code || oe.Status != tt.status {
				t.Fatalf("error = %v, want %s (%d)", err, tt.code, tt.status)
			}
			if tt.desc != "" && oe.Description != tt.desc {
				t.Fatalf("description %q, want %q", oe.Description, tt.desc)
			}
			// A failure after the client was found names it, for the
			// audit entry; an unknown one is never named.
			named := ""
			switch {
			case tt.req.ClientID == revoked.ID:
				named = revoked.ID
			case tt.name == "wrong secret", strings.HasPrefix(tt.name, "scope"), tt.name == "malformed scope",
				tt.name == "double space", tt.name == "one good one bad", tt.name == "query-restricted scope", tt.name == "openid":
				named = f.id
			}
			if oe.Client != named {
				t.Fatalf("error names client %q, want %q", oe.Client, named)
			}
			if strings.Contains(err.Error(), f.secret.Reveal()) || strings.Contains(err.Error(), revokedSecret.Reveal()) {
				t.Fatal("error carries a secret")
			}
		})
	}

	f.store.fail = store.ErrUnavailable
	_, err = f.srv.Token(ctx, good(func(*TokenRequest) {}))
	var oe *OAuthError
	if !errors.Is(err, store.ErrUnavailable) || errors.As(err, &oe) {
		t.Fatalf("store outage: %v, want a server error wrapping ErrUnavailable", err)
	}
}

func FuzzParseTokenRequest(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=a&client_secret=b", "")
	f.Add("application/x-www-form-urlencoded; charset=utf-8", "grant_type=client_credentials", "Basic YTpi")
	f.Add("application/x-www-form-urlencoded", "client_secret=x", "Basic JXp6OmI=")
	f.Add("text/plain", "a=b", "Bearer x")
	f.Fuzz(func(t *testing.T, ctype, body, authz string) {
		r := tokenHTTP("POST", ctype, body, nil)
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		got, err := ParseTokenRequest(r)
		if err != nil {
			var oe *OAuthError
			if !errors.As(err, &oe) || oe.Code != "invalid_request" || oe.Status != 400 {
				t.Fatalf("error %v is not an invalid_request OAuthError", err)
			}
			return
		}
		if got.BasicAuth && authz == "" {
			t.Fatal("BasicAuth without an Authorization header")
		}
		if got.ClientSecret != "" && got.ClientAssertion != "" {
			t.Fatal("two authentication methods accepted")
		}
	})
}
