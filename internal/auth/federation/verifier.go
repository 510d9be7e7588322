package federation

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/policy"
)

// Errors of Verify and VerifyIDToken. Every failure wraps ErrInvalidToken;
// the rest of the error is for logs, not for the caller.
var (
	ErrInvalidToken = errors.New("federation: invalid token")
	// ErrUnknownIssuer: the token's iss names no configured issuer (it may
	// be Ward's own token, or nobody's).
	ErrUnknownIssuer = errors.New("federation: unknown issuer")
	// ErrKeysUnavailable: the issuer's keys could not be fetched (or are
	// too stale), so its tokens cannot be checked for now.
	ErrKeysUnavailable = errors.New("federation: issuer keys unavailable")
)

// Identity is who a verified external token speaks for, in Ward's terms.
type Identity struct {
	Issuer     string // the issuer URL (iss)
	IssuerName string // its configured Name, for logs

	// UserID and ClientID are namespaced ("ext:<16 hex>:<raw>") so they
	// never equal a Ward user or client id, nor those of another issuer.
	// Use them wherever Ward names a subject (Principal, audit, limits).
	UserID   string
	ClientID string
	// Subject and AuthorizedParty are the raw values the issuer sent.
	Subject         string
	AuthorizedParty string

	Role     string
	FHIRUser string         // "Practitioner/123" and the like, or ""
	Scopes   []policy.Scope // token scopes intersected with the issuer's; nil for an id_token

	ACR      string
	AMR      []string
	MFA      bool      // acr or amr show a second factor by the issuer's rules
	AuthTime time.Time // zero when the token has no auth_time
	MFATime  time.Time // AuthTime when MFA is true, else zero

	TokenID  string // jti, or ""
	IssuedAt time.Time
	Expiry   time.Time
}

// Verifier checks tokens from the configured issuers. It is safe for
// concurrent use.
type Verifier struct {
	now     func() time.Time
	base    string // Config.FHIRBase
	issuers map[string]*issuer
	order   []*issuer
}

// issuer is one configured issuer with everything derived from it.
type issuer struct {
	cfg       Issuer
	tag       string // 16 hex digits of SHA-256(URL)
	allowed   []policy.Scope
	keys      *keySource
	endpoints *endpointSource // nil without sign-ins (no ClientID)
}

// New validates cfg and returns its Verifier. It does no I/O: keys are
// fetched on first use, or by Prefetch.
func New(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	v := &Verifier{now: cfg.Now, base: cfg.FHIRBase, issuers: map[string]*issuer{}}
	tags := map[string]bool{}
	for _, raw := range cfg.Issuers {
		is, err := raw.withDefaults(cfg.PrivilegedRoles)
		if err != nil {
			return nil, err
		}
		if v.issuers[is.URL] != nil {
			return nil, fmt.Errorf("federation: issuer %s configured twice", is.URL)
		}
		sum := sha256.Sum256([]byte(is.URL))
		st := &issuer{cfg: is, tag: hex.EncodeToString(sum[:8])}
		if tags[st.tag] {
			return nil, fmt.Errorf("federation: issuer %s: id prefix collides with another issuer", is.Name)
		}
		tags[st.tag] = true
		for _, s := range is.AllowedScopes {
			sc, _ := policy.ParseScope(s) // checked by withDefaults
			st.allowed = append(st.allowed, sc)
		}
		st.keys = &keySource{
			is:      &st.cfg,
			f:       newFetcher(cfg.RootCAs, cfg.FetchTimeout, cfg.MaxResponseBytes, is.AllowLoopback, is.AllowPrivateNetworks),
			timeout: cfg.FetchTimeout,
			refresh: cfg.RefreshInterval,
			minGap:  cfg.MinRefetchInterval,
			stale:   cfg.MaxStaleness,
			maxKeys: cfg.MaxKeys,
			now:     cfg.Now,
			jwksURL: is.JWKSURL,
		}
		if is.ClientID != "" {
			st.endpoints = &endpointSource{is: &st.cfg, f: st.keys.f, timeout: cfg.FetchTimeout, refresh: cfg.RefreshInterval,
				minGap: cfg.MinRefetchInterval, stale: cfg.MaxStaleness, now: cfg.Now}
			st.keys.endpoints = st.endpoints
		}
		v.issuers[is.URL] = st
		v.order = append(v.order, st)
	}
	return v, nil
}

// Verify checks an access token (without the "Bearer " prefix) from a
// configured issuer and maps it to an Identity.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	return v.verify(ctx, token, "")
}

// VerifyIDToken checks the id_token of a sign-in through a configured
// issuer: its audience is the issuer's ClientID and its nonce is the one
// Ward sent (never empty). The Identity has no scopes: the sign-in grants
// what Ward's own consent gives.
func (v *Verifier) VerifyIDToken(ctx context.Context, token, nonce string) (Identity, error) {
	if nonce == "" {
		return Identity{}, fmt.Errorf("%w: an id_token is checked against a nonce", ErrInvalidToken)
	}
	return v.verify(ctx, token, nonce)
}

// Prefetch fetches every issuer's keys now, concurrently, so that the first
// tokens need not wait; the fetches honour MinRefetchInterval. The error
// names the issuers whose keys could not be had; their tokens fail until a
// later fetch succeeds.
func (v *Verifier) Prefetch(ctx context.Context) error {
	waits := make([]chan struct{}, len(v.order))
	for i, st := range v.order {
		waits[i] = st.keys.kick(ctx)
	}
	var errs []error
	for i, st := range v.order {
		if err := st.keys.await(ctx, waits[i]); err != nil {
			errs = append(errs, fmt.Errorf("federation: issuer %s: %w", st.cfg.Name, err))
		}
	}
	return errors.Join(errs...)
}

// verify checks an access token (nonce "") or an id_token.
func (v *Verifier) verify(ctx context.Context, token, nonce string) (Identity, error) {
	t, err := splitToken(token)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	iss, err := t.claims.str("iss")
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	st := v.issuers[iss]
	if st == nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrUnknownIssuer)
	}
	id, err := v.verifyFrom(ctx, st, token, t, nonce)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: issuer %s: %w", ErrInvalidToken, st.cfg.Name, err)
	}
	return id, nil
}

// verifyFrom checks a token that names st as its issuer: the cheap checks
// first, so that a token that cannot pass never causes a key fetch.
func (v *Verifier) verifyFrom(ctx context.Context, st *issuer, token string, t rawToken, nonce string) (Identity, error) {
	is := &st.cfg
	if !slices.Contains(is.Algorithms, t.alg) {
		return Identity{}, errors.New("algorithm not allowed")
	}
	idToken := nonce != ""
	if idToken {
		if t.typ != "" && !typeMatches(t.typ, "JWT") {
			return Identity{}, errors.New("unexpected typ for an id_token")
		}
	} else if !slices.ContainsFunc(is.AccessTokenTypes, func(want string) bool { return typeMatches(t.typ, want) }) {
		return Identity{}, errors.New("unexpected typ for an access token")
	}
	c, err := st.readClaims(t.claims, nonce)
	if err != nil {
		return Identity{}, err
	}
	if err := st.checkTimes(c, v.now()); err != nil {
		return Identity{}, err
	}
	id, err := v.mapIdentity(st, t.claims, c, idToken)
	if err != nil {
		return Identity{}, err
	}

	keys, err := st.keys.keys(ctx, t.kid, t.alg)
	if err != nil {
		return Identity{}, err
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(t.alg)})
	if err != nil || len(jws.Signatures) != 1 {
		return Identity{}, errors.New("malformed JWS")
	}
	verified := false
	for _, k := range keys {
		if _, err := jws.Verify(k); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Identity{}, errors.New("signature does not verify")
	}
	// Waiting for keys takes time; the token must still be valid now.
	if err := st.checkTimes(c, v.now()); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// tokenClaims are the registered claims of a token, typed.
type tokenClaims struct {
	subject, clientID, azp, tokenID string
	exp, iat, nbf, authTime         int64
	acr                             string
	amr                             []string
}

// readClaims reads and checks the claims that do not depend on the clock.
// nonce is "" for an access token.
func (st *issuer) readClaims(cl claimSet, nonce string) (tokenClaims, error) {
	is := &st.cfg
	var c tokenClaims
	var err error
	aud, err := cl.strs("aud")
	if err != nil {
		return c, err
	}
	if c.azp, err = cl.str("azp"); err != nil {
		return c, err
	}
	if nonce == "" {
		if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(is.Audiences, a) }) {
			return c, errors.New("wrong audience")
		}
		if c.clientID, err = clientOf(cl, is.ClientIDClaim, c.azp); err != nil {
			return c, err
		}
	} else {
		// OpenID Connect Core 1.0 section 3.1.3.7.
		if is.ClientID == "" || !slices.Contains(aud, is.ClientID) {
			return c, errors.New("wrong audience")
		}
		if (len(aud) > 1 || c.azp != "") && c.azp != is.ClientID {
			return c, errors.New("azp is not Ward's client id")
		}
		got, err := cl.str("nonce")
		if err != nil {
			return c, err
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
			return c, errors.New("wrong nonce")
		}
		c.clientID = is.ClientID
	}
	if !printable(c.clientID, 255) {
		return c, errors.New("no valid client id claim")
	}
	if c.subject, err = cl.str(is.SubjectClaim); err != nil {
		return c, err
	}
	if !printable(c.subject, 255) {
		return c, errors.New("subject claim missing or not 1 to 255 printable ASCII characters")
	}
	if c.tokenID, err = cl.str("jti"); err != nil {
		return c, err
	}
	if c.tokenID != "" && !printable(c.tokenID, 255) {
		return c, errors.New("jti not printable ASCII")
	}
	var ok bool
	if c.exp, ok, err = cl.date("exp"); err != nil || !ok {
		return c, errors.New("exp missing or malformed")
	}
	if c.iat, ok, err = cl.date("iat"); err != nil || !ok {
		return c, errors.New("iat missing or malformed")
	}
	if c.nbf, _, err = cl.date("nbf"); err != nil {
		return c, err
	}
	if c.authTime, _, err = cl.date("auth_time"); err != nil {
		return c, err
	}
	if c.exp <= c.iat || time.Duration(c.exp-c.iat)*time.Second > is.MaxLifetime {
		return c, errors.New("lifetime longer than allowed or not positive")
	}
	if c.acr, err = cl.str("acr"); err != nil {
		return c, err
	}
	if c.amr, err = cl.arr("amr"); err != nil {
		return c, err
	}
	return c, nil
}

// clientOf finds the client a token was issued to: the configured claim,
// else client_id (RFC 9068), else azp.
func clientOf(cl claimSet, claim, azp string) (string, error) {
	if claim != "" {
		return cl.str(claim)
	}
	id, err := cl.str("client_id")
	if err != nil || id != "" {
		return id, err
	}
	return azp, nil
}

// checkTimes checks the validity window against now, with the issuer's
// clock skew.
func (st *issuer) checkTimes(c tokenClaims, now time.Time) error {
	skew := int64(st.cfg.ClockSkew / time.Second)
	n := now.Unix()
	switch {
	case n >= c.exp+skew:
		return errors.New("token expired")
	case c.nbf > n+skew || c.iat > n+skew:
		return errors.New("token not yet valid")
	case c.authTime > n+skew:
		return errors.New("auth_time in the future")
	}
	return nil
}

// mapIdentity maps a token's claims to an Identity: role, MFA, scopes,
// fhirUser. It runs before the signature is checked, so that a token that
// cannot map costs no key fetch; its result is used only once it is.
func (v *Verifier) mapIdentity(st *issuer, cl claimSet, c tokenClaims, idToken bool) (Identity, error) {
	is := &st.cfg
	id := Identity{
		Issuer: is.URL, IssuerName: is.Name,
		UserID: "ext:" + st.tag + ":" + c.subject, ClientID: "ext:" + st.tag + ":" + c.clientID,
		Subject: c.subject, AuthorizedParty: c.clientID,
		ACR: c.acr, AMR: c.amr, TokenID: c.tokenID,
		IssuedAt: time.Unix(c.iat, 0).UTC(), Expiry: time.Unix(c.exp, 0).UTC(),
	}
	if c.authTime != 0 {
		id.AuthTime = time.Unix(c.authTime, 0).UTC()
	}
	role, err := st.role(cl)
	if err != nil {
		return Identity{}, err
	}
	id.Role = role
	id.MFA = slices.ContainsFunc(c.amr, func(m string) bool { return slices.Contains(is.MFAMethods, m) }) ||
		(c.acr != "" && slices.Contains(is.MFAACRs, c.acr))
	if id.MFA {
		id.MFATime = id.AuthTime
	}
	if slices.Contains(is.PrivilegedRoles, role) && !id.MFA {
		return Identity{}, fmt.Errorf("role %s needs MFA evidence (acr or amr) and the token has none", role)
	}
	if is.FHIRUserClaim != "" {
		raw, err := cl.str(is.FHIRUserClaim)
		if err != nil {
			return Identity{}, err
		}
		if id.FHIRUser, err = v.fhirUser(raw); err != nil {
			return Identity{}, err
		}
	}
	if !idToken {
		raw, err := cl.strs(is.ScopeClaim)
		if err != nil {
			return Identity{}, err
		}
		scopes, err := tokenScopes(raw)
		if err != nil {
			return Identity{}, err
		}
		id.Scopes = intersectScopes(scopes, st.allowed)
	}
	return id, nil
}

// role applies the issuer's role rules: the first match wins, no match
// refuses the token.
func (st *issuer) role(cl claimSet) (string, error) {
	for _, r := range st.cfg.Roles {
		if r.Claim == "" {
			return r.Role, nil
		}
		vals, err := cl.strs(r.Claim)
		if err != nil {
			return "", err
		}
		if slices.Contains(vals, r.Value) {
			return r.Role, nil
		}
	}
	return "", errors.New("no role rule matches the token")
}

// fhirUser checks a fhirUser claim: "Type/id" for a person's resource
// type, or that under Ward's FHIR base.
func (v *Verifier) fhirUser(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	s := raw
	if strings.Contains(s, "://") {
		if v.base == "" || !strings.HasPrefix(s, v.base+"/") {
			return "", errors.New("fhirUser is a URL outside Ward's FHIR base")
		}
		s = strings.TrimPrefix(s, v.base+"/")
	}
	typ, rid, ok := strings.Cut(s, "/")
	switch typ {
	case "Practitioner", "Patient", "RelatedPerson", "Person":
	default:
		ok = false
	}
	if !ok || !policy.ValidID(rid) {
		return "", errors.New("fhirUser is not Practitioner, Patient, RelatedPerson or Person/<id>")
	}
	return typ + "/" + rid, nil
}
