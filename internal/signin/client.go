package signin

import (
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// client is a registered app as the provider library sees it. Redirect
// URIs match exactly; a client without a secret is public and must use
// PKCE (every client must).
type client struct {
	c store.Client
	p *Provider
}

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.c.RedirectURIs }
func (c *client) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.c.SecretHash == nil {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *client) LoginURL(id string) string {
	return c.p.cfg.Issuer + PathSignIn + "?id=" + url.QueryEscape(id)
}
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return c.p.cfg.AccessTTL }

// DevMode relaxes only the scheme check of a redirect URI that already
// matched a registered one exactly; registration accepts only https URIs
// and http URIs on a loopback address, so this admits exactly those.
func (c *client) DevMode() bool { return true }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed admits a requested scope when the client was registered
// with it or with a scope covering it. Scopes outside that are dropped from
// the request, never granted.
func (c *client) IsScopeAllowed(scope string) bool {
	switch scope {
	case "fhirUser", "launch/patient", "online_access":
		return slices.Contains(c.c.Scopes, scope) || slices.Contains(c.c.Scopes, "openid")
	}
	want, err := policy.ParseScope(scope)
	if err != nil || want.Context == "system" {
		return false
	}
	for _, raw := range c.c.Scopes {
		if have, err := policy.ParseScope(raw); err == nil && have.Context == want.Context && have.Covers(want) {
			return true
		}
	}
	return false
}

func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
