package federation

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/policy"
)

// Config configures a Verifier. Zero values mean the defaults; New
// validates it once.
type Config struct {
	Issuers []Issuer

	// RootCAs verifies the providers' TLS certificates; nil means the
	// system roots.
	RootCAs *x509.CertPool

	FetchTimeout       time.Duration // discovery plus JWKS, end to end; default 5 s, at most 30 s
	MaxResponseBytes   int64         // per response body; default 256 KiB, at most 4 MiB
	MaxKeys            int           // keys in one JWKS; default 50, at most 1000
	RefreshInterval    time.Duration // refetch keys this often; default 10 minutes
	MinRefetchInterval time.Duration // at most one fetch per issuer this often; default 30 s
	MaxStaleness       time.Duration // use the last good keys this long when refreshes fail; default 24 h

	// PrivilegedRoles are roles, besides admin, auditor and privacy
	// officer, that need MFA evidence from every issuer (package auth's
	// UsersConfig.MFARoles).
	PrivilegedRoles []string

	// FHIRBase is Ward's FHIR base URL. When set, an absolute fhirUser
	// claim under it is shortened to "Type/id"; other absolute URLs are
	// refused.
	FHIRBase string

	Now func() time.Time // the clock; default time.Now
}

// Issuer is one external OpenID provider Ward trusts, and what it trusts
// it for.
type Issuer struct {
	// Name is a short label for errors and logs; default the URL's host.
	Name string
	// URL is the issuer identifier: https, no query or fragment, and
	// exactly the iss claim of its tokens.
	URL string
	// Audiences are the aud values Ward accepts in access tokens from this
	// issuer (Ward's API identifier there). Empty: no access tokens.
	Audiences []string
	// ClientID is Ward's client id at this issuer: the aud of the
	// id_tokens of sign-ins through it. Empty: no sign-ins. It may not be
	// one of Audiences.
	ClientID string
	// ClientSecret authenticates Ward at the issuer's token endpoint in
	// sign-ins (client_secret_basic). Zero: Ward is a public client there
	// and PKCE alone binds the code to the sign-in.
	ClientSecret Secret
	// ClientSecretFile is where ClientSecret comes from (the file's
	// client_secret_file): ParseConfig records it and does no I/O, the
	// caller reads the file into ClientSecret, and New refuses an issuer
	// whose file was named but not read.
	ClientSecretFile string
	// SignInScopes are the scopes Ward asks for in sign-ins; default
	// "openid", which they must include.
	SignInScopes []string
	// Algorithms the issuer signs with; default RS256, ES256, EdDSA. Only
	// RS*, PS*, ES* and EdDSA can be configured.
	Algorithms []string
	// JWKSURL is where the issuer's keys are; default the jwks_uri of its
	// discovery document (URL + "/.well-known/openid-configuration").
	JWKSURL string
	// AllowCrossOriginJWKS accepts a discovered jwks_uri, and for
	// sign-ins a discovered token_endpoint, on another origin than URL
	// (Google's are). A configured JWKSURL is trusted as it is.
	AllowCrossOriginJWKS bool
	// AccessTokenTypes are the typ header values accepted on access tokens,
	// compared case-insensitively, "application/" optional; default "at+jwt"
	// and "JWT". List "" to accept a token without typ.
	AccessTokenTypes []string

	// SubjectClaim holds the user's stable id; default "sub" (Entra: "oid").
	SubjectClaim string
	// ClientIDClaim holds the client the token was issued to; default
	// "client_id", else "azp" (Okta: "cid", Entra v1: "appid").
	ClientIDClaim string
	// ScopeClaim holds the scopes, a space-separated string or an array of
	// strings; default "scope" (Entra, Okta: "scp").
	ScopeClaim string
	// AllowedScopes are the SMART resource scopes this issuer may grant; a
	// token's scopes are intersected with them. Empty: no scopes.
	AllowedScopes []string
	// FHIRUserClaim holds the user's FHIR resource ("Practitioner/123");
	// empty: not taken from this issuer. Trust it only from an issuer that
	// manages it: a patient's fhirUser selects whose records they see.
	FHIRUserClaim string
	// Roles map claims to one Ward role; the first matching rule wins and
	// a token no rule matches is refused.
	Roles []RoleRule
	// PrivilegedRoles are roles that need MFA evidence in tokens of this
	// issuer, besides admin, auditor, privacy officer and
	// Config.PrivilegedRoles.
	PrivilegedRoles []string
	// MFAMethods are amr values that show a second factor; default "mfa",
	// "otp", "hwk", "swk". MFAACRs are acr values that do.
	MFAMethods []string
	MFAACRs    []string

	ClockSkew   time.Duration // default 30 s, at most 5 minutes
	MaxLifetime time.Duration // exp - iat; default 1 hour, at most 24 hours

	// AllowLoopback and AllowPrivateNetworks let Ward fetch this issuer's
	// keys from loopback (tests) or private addresses (an on-premises IdP).
	AllowLoopback        bool
	AllowPrivateNetworks bool
}

// RoleRule gives Role to a token whose Claim equals Value or, for an array
// claim, contains it. A rule without Claim matches every token (a fixed
// role) and must be the last. Claim is a top-level claim name, or an RFC
// 6901 JSON Pointer starting with '/' for a nested one
// ("/realm_access/roles").
type RoleRule struct {
	Claim string
	Value string
	Role  string
}

// Defaults and bounds.
const (
	defaultFetchTimeout  = 5 * time.Second
	defaultMaxResponse   = 256 << 10
	defaultMaxKeys       = 50
	defaultRefresh       = 10 * time.Minute
	defaultMinRefetch    = 30 * time.Second
	defaultMaxStaleness  = 24 * time.Hour
	defaultClockSkew     = 30 * time.Second
	defaultMaxLifetime   = time.Hour
	maxFetchTimeout      = 30 * time.Second
	maxResponseLimit     = 4 << 20
	maxKeysLimit         = 1000
	maxClockSkew         = 5 * time.Minute
	maxLifetimeLimit     = 24 * time.Hour
	maxAllowedScopes     = 64
	maxRoleRules         = 256
	maxIssuers           = 64
	maxConfigStringBytes = 2048
)

var (
	defaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}
	defaultMFAMethods = []string{"mfa", "otp", "hwk", "swk"}
	defaultTokenTypes = []string{"at+jwt", "JWT"}
	// supportedAlgorithms are the asymmetric JWS algorithms an issuer may
	// be configured with.
	supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if len(c.Issuers) == 0 || len(c.Issuers) > maxIssuers {
		return c, fmt.Errorf("federation: want 1 to %d issuers", maxIssuers)
	}
	var err error
	if c.FetchTimeout, err = duration("fetch timeout", c.FetchTimeout, defaultFetchTimeout, 100*time.Millisecond, maxFetchTimeout); err != nil {
		return c, err
	}
	if c.RefreshInterval, err = duration("refresh interval", c.RefreshInterval, defaultRefresh, time.Minute, 24*time.Hour); err != nil {
		return c, err
	}
	if c.MinRefetchInterval, err = duration("minimum refetch interval", c.MinRefetchInterval, defaultMinRefetch, time.Second, c.RefreshInterval); err != nil {
		return c, err
	}
	if c.MaxStaleness, err = duration("maximum staleness", c.MaxStaleness, defaultMaxStaleness, c.RefreshInterval, 7*24*time.Hour); err != nil {
		return c, err
	}
	switch {
	case c.MaxResponseBytes == 0:
		c.MaxResponseBytes = defaultMaxResponse
	case c.MaxResponseBytes < 1024 || c.MaxResponseBytes > maxResponseLimit:
		return c, fmt.Errorf("federation: maximum response size out of range 1 KiB to %d", maxResponseLimit)
	}
	switch {
	case c.MaxKeys == 0:
		c.MaxKeys = defaultMaxKeys
	case c.MaxKeys < 1 || c.MaxKeys > maxKeysLimit:
		return c, fmt.Errorf("federation: maximum keys out of range 1 to %d", maxKeysLimit)
	}
	for _, r := range c.PrivilegedRoles {
		if !policy.ValidRoleName(r) {
			return c, fmt.Errorf("federation: privileged role %q is not a role name", r)
		}
	}
	if c.FHIRBase != "" {
		u, err := url.Parse(c.FHIRBase)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return c, errors.New("federation: FHIR base must be an https URL without query or fragment")
		}
		c.FHIRBase = strings.TrimSuffix(c.FHIRBase, "/")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func duration(what string, d, def, lo, hi time.Duration) (time.Duration, error) {
	if d == 0 {
		d = def
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("federation: %s %v out of range %v to %v", what, d, lo, hi)
	}
	return d, nil
}

// withDefaults validates one issuer's configuration and fills in its
// defaults. privileged are the roles privileged for every issuer.
func (is Issuer) withDefaults(privileged []string) (Issuer, error) {
	u, err := checkURL(is.URL)
	if err != nil {
		return is, fmt.Errorf("federation: issuer %q: %w", is.URL, err)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return is, fmt.Errorf("federation: issuer %q: an issuer has no query", is.URL)
	}
	if err := checkHost(u, is.AllowLoopback, is.AllowPrivateNetworks); err != nil {
		return is, fmt.Errorf("federation: issuer %q: %w", is.URL, err)
	}
	if is.Name == "" {
		is.Name = u.Host
	}
	if !printable(is.Name, 64) {
		return is, fmt.Errorf("federation: issuer %q: name must be 1 to 64 printable ASCII characters", is.URL)
	}
	bad := func(format string, args ...any) (Issuer, error) {
		return is, fmt.Errorf("federation: issuer %s: "+format, append([]any{is.Name}, args...)...)
	}
	if len(is.Audiences) == 0 && is.ClientID == "" {
		return bad("needs audiences (access tokens) or a client id (sign-ins)")
	}
	for _, a := range is.Audiences {
		if !printable(a, maxConfigStringBytes) {
			return bad("audience %q is empty or not printable ASCII", a)
		}
	}
	if is.ClientID != "" && !printable(is.ClientID, maxConfigStringBytes) {
		return bad("client id is not printable ASCII")
	}
	if slices.Contains(is.Audiences, is.ClientID) {
		return bad("the client id may not be an access token audience: an id_token would pass as an access token")
	}
	if err := is.checkSignIn(); err != nil {
		return bad("%v", err)
	}
	if len(is.Algorithms) == 0 {
		is.Algorithms = defaultAlgorithms
	}
	for _, a := range is.Algorithms {
		if !slices.Contains(supportedAlgorithms, a) {
			return bad("algorithm %q is not one of %s", a, strings.Join(supportedAlgorithms, ", "))
		}
	}
	if is.JWKSURL != "" {
		ju, err := checkURL(is.JWKSURL)
		if err != nil {
			return bad("JWKS URL: %v", err)
		}
		if err := checkHost(ju, is.AllowLoopback, is.AllowPrivateNetworks); err != nil {
			return bad("JWKS URL: %v", err)
		}
	}
	if is.AccessTokenTypes == nil {
		is.AccessTokenTypes = defaultTokenTypes
	}
	if is.SubjectClaim == "" {
		is.SubjectClaim = "sub"
	}
	if is.ScopeClaim == "" {
		is.ScopeClaim = "scope"
	}
	for _, name := range []string{is.SubjectClaim, is.ClientIDClaim, is.ScopeClaim, is.FHIRUserClaim} {
		if name != "" && !validClaimName(name) {
			return bad("claim name %q is not valid", name)
		}
	}
	if len(is.AllowedScopes) > maxAllowedScopes {
		return bad("more than %d allowed scopes", maxAllowedScopes)
	}
	for _, s := range is.AllowedScopes {
		if _, err := policy.ParseScope(s); err != nil {
			return bad("allowed scope %q: %v", s, err)
		}
	}
	if len(is.Roles) == 0 || len(is.Roles) > maxRoleRules {
		return bad("want 1 to %d role rules", maxRoleRules)
	}
	for i, r := range is.Roles {
		if !policy.ValidRoleName(r.Role) {
			return bad("role rule %d: %q is not a role name", i, r.Role)
		}
		if r.Claim == "" && (r.Value != "" || i != len(is.Roles)-1) {
			return bad("role rule %d: a rule without a claim is a fixed role, has no value and comes last", i)
		}
		if r.Claim != "" && (!validClaimName(r.Claim) || r.Value == "" || len(r.Value) > maxConfigStringBytes) {
			return bad("role rule %d: needs a valid claim and a value", i)
		}
	}
	for _, r := range is.PrivilegedRoles {
		if !policy.ValidRoleName(r) {
			return bad("privileged role %q is not a role name", r)
		}
	}
	is.PrivilegedRoles = slices.Concat(policy.PrivilegedRoles(), privileged, is.PrivilegedRoles)
	if is.MFAMethods == nil {
		is.MFAMethods = defaultMFAMethods
	}
	if is.ClockSkew, err = duration("clock skew", is.ClockSkew, defaultClockSkew, 0, maxClockSkew); err != nil {
		return bad("%v", err)
	}
	if is.MaxLifetime, err = duration("maximum lifetime", is.MaxLifetime, defaultMaxLifetime, time.Minute, maxLifetimeLimit); err != nil {
		return bad("%v", err)
	}
	return is, nil
}

// checkURL accepts an absolute https URL without user info or fragment.
func checkURL(raw string) (*url.URL, error) {
	if len(raw) == 0 || len(raw) > maxConfigStringBytes {
		return nil, errors.New("URL empty or too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("URL does not parse")
	}
	if u.Scheme != "https" || u.Host == "" || u.Opaque != "" || u.User != nil || u.Fragment != "" || u.RawFragment != "" {
		return nil, errors.New("want an https URL with a host and no user info or fragment")
	}
	return u, nil
}

// checkHost refuses a URL whose host is an IP literal Ward may not
// connect to. Names are checked when they are resolved, at dial time.
func checkHost(u *url.URL, loopback, private bool) error {
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		return checkAddr(ip, loopback, private)
	}
	return nil
}

// sameOrigin reports whether a and b have the same scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// validClaimName accepts a printable claim name, or a JSON Pointer of at
// most 8 segments.
func validClaimName(s string) bool {
	if !printable(s, 256) {
		return false
	}
	if strings.HasPrefix(s, "/") {
		_, err := pointer(s)
		return err == nil
	}
	return true
}

// printable reports whether s is 1 to max bytes of printable ASCII
// without spaces.
func printable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
