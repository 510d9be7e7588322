package signin

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/store"
)

// Store is what the provider keeps: clients and identity state.
type Store interface {
	store.Clients
	store.Identity
}

// storage adapts Ward's store to the OpenID provider library's Storage.
// Protocol state (authorization requests, codes, refresh tokens) lives in
// the database, so any replica can continue a flow another began.
type storage struct {
	p *Provider
}

var _ op.Storage = storage{}
var _ op.CanGetPrivateClaimsFromRequest = storage{}
var _ op.CanSetUserinfoFromRequest = storage{}

// authRequest is an authorization request in flight, stored as JSON.
type authRequest struct {
	ID            string    `json:"id"`
	ClientID      string    `json:"client_id"`
	Resource      string    `json:"resource"` // the FHIR base URL, access tokens' audience
	RedirectURI   string    `json:"redirect_uri"`
	State         string    `json:"state,omitempty"`
	Nonce         string    `json:"nonce,omitempty"`
	Scopes        []string  `json:"scopes"`
	ResponseMode  string    `json:"response_mode,omitempty"`
	Challenge     string    `json:"code_challenge"`
	MaxAge        *uint     `json:"max_age,omitempty"`
	Created       time.Time `json:"created"`
	Expires       time.Time `json:"expires"`
	UserID        string    `json:"user_id,omitempty"`
	SessionID     string    `json:"session_id,omitempty"`
	AuthTime      time.Time `json:"auth_time,omitzero"`
	MFATime       time.Time `json:"mfa_time,omitzero"`
	AMR           []string  `json:"amr,omitempty"`
	Patient       string    `json:"patient,omitempty"`
	FHIRUser      string    `json:"fhir_user,omitempty"`
	Approved      bool      `json:"approved,omitempty"`
	GrantID       string    `json:"grant_id,omitempty"`
	WebAuthn      []byte    `json:"webauthn,omitempty"` // the pages' WebAuthn ceremony (package auth's state); never sent to the browser
	codeExchanged bool

	// Federated is a sign-in through an external OpenID provider in
	// flight; kept here so that any replica can finish it.
	Federated *federatedSignIn `json:"federated,omitempty"`
}

func (a *authRequest) GetID() string         { return a.ID }
func (a *authRequest) GetACR() string        { return acrOf(a.AMR) }
func (a *authRequest) GetAMR() []string      { return a.AMR }
func (a *authRequest) GetAudience() []string { return []string{a.ClientID, a.Resource} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.AuthTime
}
func (a *authRequest) GetClientID() string { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	return &oidc.CodeChallenge{Challenge: a.Challenge, Method: oidc.CodeChallengeMethodS256}
}
func (a *authRequest) GetNonce() string                   { return a.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseTypeCode }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.ResponseMode) }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.UserID }
func (a *authRequest) Done() bool                         { return a.Approved && a.UserID != "" }

// acrOf names the assurance of a sign-in: a second factor or not. "mfa"
// comes only from an external provider whose evidence of a second factor
// counts by its issuer's rules (federatedAMR).
func acrOf(amr []string) string {
	for _, m := range amr {
		switch m {
		case "otp", "recovery", "mfa", auth.AMRHardwareKey, auth.AMRSoftwareKey:
			return ACRMFA
		}
	}
	return ACRPassword
}

// Authentication context class references carried in tokens (acr).
const (
	ACRPassword = "urn:ward:acr:pwd" // #nosec G101 -- an ACR value (RFC 8176 style urn), not a credential
	ACRMFA      = "urn:ward:acr:mfa"
)

// refreshRequest continues a grant with a refresh token.
type refreshRequest struct {
	GrantID  string    `json:"grant_id"`
	UserID   string    `json:"user_id"`
	ClientID string    `json:"client_id"`
	Resource string    `json:"resource"`
	Scopes   []string  `json:"scopes"`
	AuthTime time.Time `json:"auth_time"`
	MFATime  time.Time `json:"mfa_time,omitzero"`
	AMR      []string  `json:"amr,omitempty"`
	Patient  string    `json:"patient,omitempty"`
	FHIRUser string    `json:"fhir_user,omitempty"`
	tokenID  string
}

func (r *refreshRequest) GetAMR() []string                 { return r.AMR }
func (r *refreshRequest) GetAudience() []string            { return []string{r.ClientID, r.Resource} }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.AuthTime }
func (r *refreshRequest) GetClientID() string              { return r.ClientID }
func (r *refreshRequest) GetScopes() []string              { return r.Scopes }
func (r *refreshRequest) GetSubject() string               { return r.UserID }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.Scopes = scopes }

func (s storage) loadRequest(ctx context.Context, ar store.AuthRequest) (*authRequest, error) {
	var a authRequest
	if err := json.Unmarshal(ar.Data, &a); err != nil {
		return nil, fmt.Errorf("signin: decode auth request: %w", err)
	}
	if !s.p.cfg.Now().Before(a.Expires) {
		return nil, oidc.ErrInvalidRequest().WithDescription("the sign-in took too long; start again")
	}
	return &a, nil
}

func (s storage) saveRequest(ctx context.Context, a *authRequest, code string) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.p.st.PutAuthRequest(ctx, store.AuthRequest{ID: a.ID, Code: code, Data: data, Expires: a.Expires})
}

// CreateAuthRequest stores a validated authorization request. PKCE with
// S256 is required of every client, public or confidential.
func (s storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required")
	}
	if r.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_type=code is supported")
	}
	if len(r.Scopes) > 64 || len(r.State) > 1024 || len(r.Nonce) > 1024 || len(r.CodeChallenge) > 128 {
		return nil, oidc.ErrInvalidRequest().WithDescription("request parameters too long")
	}
	id, err := randomToken(18)
	if err != nil {
		return nil, err
	}
	now := s.p.cfg.Now().UTC()
	a := &authRequest{
		ID: id, ClientID: r.ClientID, Resource: s.p.cfg.Audience, RedirectURI: r.RedirectURI, State: r.State, Nonce: r.Nonce,
		Scopes: r.Scopes, ResponseMode: string(r.ResponseMode), Challenge: r.CodeChallenge, MaxAge: r.MaxAge,
		Created: now, Expires: now.Add(s.p.cfg.SignInTimeout),
	}
	if err := s.saveRequest(ctx, a, ""); err != nil {
		return nil, fmt.Errorf("signin: store auth request: %w", err)
	}
	return a, nil
}

func (s storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	ar, err := s.p.st.AuthRequest(ctx, id)
	if err != nil {
		return nil, notFound(err, "unknown or expired sign-in request")
	}
	return s.loadRequest(ctx, ar)
}

func (s storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	ar, err := s.p.st.AuthRequestByCode(ctx, hashToken(code))
	if err != nil {
		return nil, notFound(err, "unknown, used or expired code")
	}
	a, err := s.loadRequest(ctx, ar)
	if err != nil {
		return nil, err
	}
	// A code works once: forget it now, before any token is issued, so a
	// second exchange of the same code finds nothing.
	if err := s.p.st.DeleteAuthRequest(ctx, a.ID); err != nil {
		return nil, fmt.Errorf("signin: consume code: %w", err)
	}
	a.codeExchanged = true
	return a, nil
}

func (s storage) SaveAuthCode(ctx context.Context, id, code string) error {
	ar, err := s.p.st.AuthRequest(ctx, id)
	if err != nil {
		return notFound(err, "unknown or expired sign-in request")
	}
	a, err := s.loadRequest(ctx, ar)
	if err != nil {
		return err
	}
	// The code is good for a short while only.
	if exp := s.p.cfg.Now().UTC().Add(codeLifetime); exp.Before(a.Expires) {
		a.Expires = exp
	}
	return s.saveRequest(ctx, a, hashToken(code))
}

const codeLifetime = time.Minute

func (s storage) DeleteAuthRequest(ctx context.Context, id string) error {
	err := s.p.st.DeleteAuthRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// grantOf returns the grant a token request continues, creating it on
// the first exchange of a code.
func (s storage) grantOf(ctx context.Context, req op.TokenRequest) (string, error) {
	switch r := req.(type) {
	case *authRequest:
		if r.GrantID != "" {
			return r.GrantID, nil
		}
		id, err := randomToken(18)
		if err != nil {
			return "", err
		}
		g := store.Grant{ID: id, UserID: r.UserID, ClientID: r.ClientID, SessionID: r.SessionID, Created: s.p.cfg.Now().UTC()}
		if err := s.p.st.CreateGrant(ctx, g); err != nil {
			return "", fmt.Errorf("signin: create grant: %w", err)
		}
		r.GrantID = id
		return id, nil
	case *refreshRequest:
		return r.GrantID, nil
	}
	return "", oidc.ErrUnsupportedGrantType()
}

// checkPrivileged refuses a token for a role that needs MFA when the
// sign-in had no second factor: the pages never let that happen, and this
// check makes sure no other path does (catalogue B7).
func (s storage) checkPrivileged(ctx context.Context, userID string, amr []string) error {
	usr, err := s.p.users.User(ctx, userID)
	if err != nil {
		return fmt.Errorf("signin: load user: %w", err)
	}
	if usr.Disabled {
		return oidc.ErrAccessDenied().WithDescription("the account is disabled")
	}
	if s.p.users.MFARequired(usr) && acrOf(amr) != ACRMFA {
		return oidc.ErrAccessDenied().WithDescription("this role needs a second factor")
	}
	return nil
}

func (s storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	grant, err := s.grantOf(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.checkPrivileged(ctx, req.GetSubject(), amrOf(req)); err != nil {
		return "", time.Time{}, err
	}
	return s.accessTokenID(grant)
}

// accessTokenID returns a jti naming the grant, so that revoking an access
// token finds its grant without a lookup table.
func (s storage) accessTokenID(grant string) (string, time.Time, error) {
	r, err := randomToken(9)
	if err != nil {
		return "", time.Time{}, err
	}
	return grant + "." + r, s.p.cfg.Now().UTC().Add(s.p.cfg.AccessTTL), nil
}

func amrOf(req op.TokenRequest) []string {
	if r, ok := req.(interface{ GetAMR() []string }); ok {
		return r.GetAMR()
	}
	return nil
}

// CreateAccessAndRefreshTokens issues an access token and a new refresh
// token. When current is set this is a refresh: the current token is
// marked used first, and if it already was (reuse of a rotated token, a
// sign of theft) the whole grant is revoked.
func (s storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	grant, err := s.grantOf(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if err := s.checkPrivileged(ctx, req.GetSubject(), amrOf(req)); err != nil {
		return "", "", time.Time{}, err
	}
	if current != "" {
		if err := s.p.st.UseRefreshToken(ctx, hashToken(current)); err != nil {
			if errors.Is(err, store.ErrConflict) {
				_ = s.p.st.RevokeGrant(ctx, grant)
				return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token reused; the grant is revoked")
			}
			return "", "", time.Time{}, fmt.Errorf("signin: use refresh token: %w", err)
		}
	}
	next, err := s.newRefreshToken(ctx, req, grant)
	if err != nil {
		return "", "", time.Time{}, err
	}
	id, exp, err := s.accessTokenID(grant)
	return id, next, exp, err
}

func (s storage) newRefreshToken(ctx context.Context, req op.TokenRequest, grant string) (string, error) {
	rr := refreshRequest{GrantID: grant, UserID: req.GetSubject(), Scopes: req.GetScopes(), Resource: s.p.cfg.Audience}
	switch r := req.(type) {
	case *authRequest:
		rr.ClientID, rr.AuthTime, rr.MFATime, rr.AMR, rr.Patient, rr.FHIRUser = r.ClientID, r.AuthTime, r.MFATime, r.AMR, r.Patient, r.FHIRUser
	case *refreshRequest:
		rr.ClientID, rr.AuthTime, rr.MFATime, rr.AMR, rr.Patient, rr.FHIRUser = r.ClientID, r.AuthTime, r.MFATime, r.AMR, r.Patient, r.FHIRUser
	}
	data, err := json.Marshal(rr)
	if err != nil {
		return "", err
	}
	tok, err := randomToken(32)
	if err != nil {
		return "", err
	}
	now := s.p.cfg.Now().UTC()
	err = s.p.st.CreateRefreshToken(ctx, store.RefreshToken{ID: hashToken(tok), GrantID: grant, Data: data, Created: now, Expires: now.Add(s.p.cfg.RefreshTTL)})
	if err != nil {
		return "", fmt.Errorf("signin: store refresh token: %w", err)
	}
	return tok, nil
}

// TokenRequestByRefreshToken loads the grant a refresh token continues.
// A used token here is reuse: the grant is revoked.
func (s storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	rt, err := s.p.st.RefreshToken(ctx, hashToken(token))
	if err != nil {
		return nil, notFound(err, "unknown refresh token")
	}
	if rt.Used {
		_ = s.p.st.RevokeGrant(ctx, rt.GrantID)
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token reused; the grant is revoked")
	}
	if !s.p.cfg.Now().Before(rt.Expires) {
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token expired")
	}
	g, err := s.p.st.Grant(ctx, rt.GrantID)
	if err != nil {
		return nil, notFound(err, "unknown grant")
	}
	if g.Revoked {
		return nil, oidc.ErrInvalidGrant().WithDescription("the grant was revoked")
	}
	var rr refreshRequest
	if err := json.Unmarshal(rt.Data, &rr); err != nil {
		return nil, fmt.Errorf("signin: decode refresh token: %w", err)
	}
	rr.tokenID = rt.ID
	return &rr, nil
}

func (s storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	return nil // sessions end through the logout page, which knows the session
}

// RevokeToken revokes the grant of an access or refresh token (RFC 7009
// lets a server revoke related tokens; Ward revokes them all).
func (s storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	grant := ""
	if g, _, ok := strings.Cut(tokenOrID, "."); ok && userID != "" {
		grant = g // an access token's jti
	} else if rt, err := s.p.st.RefreshToken(ctx, hashToken(tokenOrID)); err == nil {
		grant = rt.GrantID
	} else {
		return nil // unknown tokens are "revoked" already (RFC 7009 2.2)
	}
	g, err := s.p.st.Grant(ctx, grant)
	if err != nil {
		return nil
	}
	if g.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
	}
	if err := s.p.st.RevokeGrant(ctx, grant); err != nil {
		return oidc.ErrServerError()
	}
	return nil
}

func (s storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rt, err := s.p.st.RefreshToken(ctx, hashToken(token))
	if err != nil {
		return "", "", op.ErrInvalidRefreshToken
	}
	g, err := s.p.st.Grant(ctx, rt.GrantID)
	if err != nil || g.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return g.UserID, token, nil
}

// signingKey is the provider's Ed25519 key, the same one access tokens
// for services are signed with, under the same key id.
type signingKey struct {
	id  string
	key crypto.Signer
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.EdDSA }
func (k signingKey) Key() any                                    { return cryptosigner.Opaque(k.key) }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct {
	id  string
	key ed25519.PublicKey
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.EdDSA }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }

func (s storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{id: s.p.kid, key: s.p.key}, nil
}

func (s storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.EdDSA}, nil
}

func (s storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{id: s.p.kid, key: s.p.pub}}, nil
}

func (s storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.p.st.Client(ctx, id)
	if err != nil {
		return nil, notFound(err, "unknown client")
	}
	s.p.event(ctx, Event{Client: c.ID}) // registered: its id may be recorded
	if !c.Active() || len(c.RedirectURIs) == 0 {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return &client{c: c, p: s.p}, nil
}

func (s storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	if err := s.p.auth.CheckClientSecret(ctx, id, secret); err != nil {
		// Throttled or not, the app sees the same answer.
		var oe *auth.OAuthError
		registered := errors.As(err, &oe) && oe.Client != ""
		if registered {
			s.p.event(ctx, Event{Client: oe.Client}) // registered, not proven
		}
		if errors.Is(err, auth.ErrClientLocked) {
			// Only a registered client's id is named: an id nobody
			// registered is what an unproven caller typed.
			e := secevent.New(secevent.ClientThrottled, s.p.cfg.Now())
			e.Outcome = secevent.Failure
			if registered {
				e.Client = oe.Client
			} else {
				e = e.With(secevent.AttrReason, "unregistered-client")
			}
			s.p.cfg.Events.Emit(e)
		}
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	s.p.event(ctx, Event{Client: id}) // proven
	return nil
}

func (s storage) SetUserinfoFromScopes(ctx context.Context, info *oidc.UserInfo, userID, clientID string, scopes []string) error {
	return nil // id_tokens carry only sub and what SetUserinfoFromRequest adds
}

func (s storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(ctx, info, req.GetSubject(), scopes)
}

func (s storage) setUserinfo(ctx context.Context, info *oidc.UserInfo, userID string, scopes []string) error {
	usr, err := s.p.users.User(ctx, userID)
	if err != nil {
		return fmt.Errorf("signin: load user: %w", err)
	}
	info.Subject = usr.ID
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = usr.Username
	}
	if slices.Contains(scopes, "fhirUser") && usr.FHIRUser != "" {
		info.AppendClaims("fhirUser", s.p.cfg.Audience+"/"+usr.FHIRUser)
	}
	return nil
}

func (s storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	grant, _, _ := strings.Cut(tokenID, ".")
	g, err := s.p.st.Grant(ctx, grant)
	if err != nil || g.Revoked || g.UserID != subject {
		return errors.New("token is no longer valid")
	}
	return s.setUserinfo(ctx, info, subject, []string{oidc.ScopeProfile, "fhirUser"})
}

func (s storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	grant, _, _ := strings.Cut(tokenID, ".")
	g, err := s.p.st.Grant(ctx, grant)
	if err != nil || g.Revoked || g.UserID != subject {
		return errors.New("token is no longer valid")
	}
	usr, err := s.p.users.User(ctx, subject)
	if err != nil || usr.Disabled {
		return errors.New("token is no longer valid")
	}
	resp.Subject = subject
	resp.ClientID = g.ClientID
	resp.Username = usr.Username
	return nil
}

func (s storage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	return nil, nil
}

// GetPrivateClaimsFromRequest adds Ward's claims to an access token: the
// granted scopes, the grant, the role, the SMART launch context and how
// the person authenticated (acr, amr, auth_time, mfa_time for step-up).
func (s storage) GetPrivateClaimsFromRequest(ctx context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	grant, err := s.grantOf(ctx, req)
	if err != nil {
		return nil, err
	}
	usr, err := s.p.users.User(ctx, req.GetSubject())
	if err != nil {
		return nil, fmt.Errorf("signin: load user: %w", err)
	}
	var authTime, mfaTime time.Time
	var amr []string
	var patient, fhirUser string
	switch r := req.(type) {
	case *authRequest:
		authTime, mfaTime, amr, patient, fhirUser = r.AuthTime, r.MFATime, r.AMR, r.Patient, r.FHIRUser
	case *refreshRequest:
		authTime, mfaTime, amr, patient, fhirUser = r.AuthTime, r.MFATime, r.AMR, r.Patient, r.FHIRUser
	}
	c := map[string]any{
		auth.ClaimGrant: grant,
		"scope":         strings.Join(smartScopes(req.GetScopes()), " "),
		auth.ClaimRole:  usr.Role,
		"acr":           acrOf(amr),
		"amr":           amr,
		"auth_time":     authTime.Unix(),
	}
	if !mfaTime.IsZero() {
		c[auth.ClaimMFATime] = mfaTime.Unix()
	}
	if patient != "" {
		c["patient"] = patient
	}
	if fhirUser != "" {
		c["fhirUser"] = fhirUser
	}
	return c, nil
}

// smartScopes keeps the scopes that say what data may be reached (SMART
// resource scopes and launch context), in request order.
func smartScopes(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		if _, err := policy.ParseScope(sc); err == nil || auth.IsPersonScope(sc) {
			out = append(out, sc)
		}
	}
	return out
}

func (s storage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrInvalidClient().WithDescription("JWT client authentication is not enabled")
}

func (s storage) ValidateJWTProfileScopes(ctx context.Context, userID string, scopes []string) ([]string, error) {
	return nil, oidc.ErrUnauthorizedClient()
}

func (s storage) Health(ctx context.Context) error { return nil }

// notFound maps a store miss to an OAuth2 error and passes other errors on.
func notFound(err error, desc string) error {
	if errors.Is(err, store.ErrNotFound) {
		return oidc.ErrInvalidRequest().WithDescription("%s", desc)
	}
	return err
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("signin: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashToken is how codes, refresh tokens and session cookies are stored:
// they are 128 bits or more of randomness, so a fast hash is enough to make
// a copy of the database useless for replaying them.
func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}
