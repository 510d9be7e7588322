package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/wardhealth/ward/internal/auth/credential"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
)

// WebAuthn (W3C Web Authentication Level 3) second factor: security keys
// and passkeys, through github.com/go-webauthn/webauthn, which checks the
// ceremonies (challenge, origin, relying party id hash, flags, attestation
// format, signature). What Ward adds:
//
//   - The relying party is the issuer: its origin is UsersConfig.Origin and
//     its id the origin's host name. A credential made for another origin
//     or relying party id is refused at registration and at sign-in.
//   - A ceremony's state (its challenge) is returned to the caller, who
//     keeps it server-side with the sign-in (the authorization request in
//     the database), so any replica can finish a ceremony another began.
//     The state names the user and the ceremony kind and expires after
//     webAuthnTimeout by the Users clock.
//   - A user's credentials are one value, sealed under the shared data key
//     with the user's id as associated data (like the TOTP secret), so a
//     database write alone cannot add a key to someone's account.
//   - Each accepted assertion is checked against the stored signature
//     counter in a compare-and-swap update of the user: a counter that did
//     not increase (when either is non-zero) means a cloned authenticator
//     or a replay; the credential is then flagged and refused from then on
//     (ErrAuthenticatorCloned). The hash of the last accepted challenge is
//     kept too, so an assertion is accepted once even from authenticators
//     without a counter, across replicas.
//
// Attestation is not required ("none" is asked for): Ward does not limit
// which authenticator models may be used, so there is no metadata service.

// Authentication method references (RFC 8176) that a WebAuthn second
// factor puts in a sign-in's amr.
const (
	// AMRHardwareKey: a credential that cannot leave its authenticator
	// (not backup eligible), such as a security key.
	AMRHardwareKey = "hwk"
	// AMRSoftwareKey: a backup-eligible credential (a synced passkey), whose
	// private key may be copied between a person's devices.
	AMRSoftwareKey = "swk"
)

// ErrAuthenticatorCloned is returned when a WebAuthn credential's
// signature counter went backwards: two copies of its private key may
// exist. The credential is refused from then on, until an administrator
// removes the user's second factors.
var ErrAuthenticatorCloned = fmt.Errorf("%w: the authenticator's signature counter did not increase; it may be cloned", ErrMFAFailed)

var errWebAuthnOff = errors.New("auth: WebAuthn is not available: the origin is not an https URL with a domain name")

const (
	webAuthnTimeout  = 5 * time.Minute
	maxWebAuthnCreds = 16
	// maxWebAuthnResponse bounds a browser's response to a ceremony; an
	// attestation with a certificate chain is a few kilobytes.
	maxWebAuthnResponse = 64 << 10
)

// webAuthnCred is one stored credential (the WebAuthn credential record).
type webAuthnCred struct {
	ID              []byte    `json:"id"`
	PublicKey       []byte    `json:"public_key"` // COSE_Key
	SignCount       uint32    `json:"sign_count"`
	AAGUID          []byte    `json:"aaguid,omitempty"`
	Transports      []string  `json:"transports,omitempty"`
	Flags           byte      `json:"flags"` // authenticator data flags at registration, updated at each use
	AttestationType string    `json:"attestation_type,omitempty"`
	AttestationFmt  string    `json:"attestation_format,omitempty"`
	Created         time.Time `json:"created"`
	LastUsed        time.Time `json:"last_used,omitzero"`
	Name            string    `json:"name"`
	Cloned          bool      `json:"cloned,omitempty"` // the counter went back: refused
}

// webAuthnCreds is what store.User.WebAuthn holds, sealed.
type webAuthnCreds struct {
	Version       int            `json:"v"`
	Creds         []webAuthnCred `json:"creds"`
	LastChallenge []byte         `json:"last_challenge,omitempty"` // SHA-256 of the last accepted challenge
}

func (c webAuthnCred) library() webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID: c.ID, PublicKey: c.PublicKey, AttestationType: c.AttestationType, AttestationFormat: c.AttestationFmt,
		Transport: transports,
		Flags:     webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(c.Flags)),
		Authenticator: webauthn.Authenticator{
			AAGUID: c.AAGUID, SignCount: c.SignCount, CloneWarning: c.Cloned,
		},
	}
}

// method is the amr value of a sign-in with this credential.
func (c webAuthnCred) method() string {
	if protocol.AuthenticatorFlags(c.Flags).HasBackupEligible() {
		return AMRSoftwareKey
	}
	return AMRHardwareKey
}

// webAuthnUser is a user as the WebAuthn library sees it. The user handle
// is Ward's user id: random, never reused, and no personal data.
type webAuthnUser struct {
	usr   store.User
	creds []webAuthnCred
}

func (w webAuthnUser) WebAuthnID() []byte          { return []byte(w.usr.ID) }
func (w webAuthnUser) WebAuthnName() string        { return w.usr.Username }
func (w webAuthnUser) WebAuthnDisplayName() string { return w.usr.Username }
func (w webAuthnUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(w.creds))
	for _, c := range w.creds {
		if !c.Cloned {
			out = append(out, c.library())
		}
	}
	return out
}

// newWebAuthn returns the relying party for origin (an issuer URL; a path
// in it is not part of the origin), or nil when origin cannot be one
// (empty, or a host that is an IP address, which WebAuthn does not allow).
func newWebAuthn(origin, name string) (*webauthn.WebAuthn, error) {
	if origin == "" {
		return nil, nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("auth: origin %q is not an https URL", origin)
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return nil, nil
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         name,
		RPOrigins:             []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: webAuthnTimeout, TimeoutUVD: webAuthnTimeout},
			Registration: webauthn.TimeoutConfig{Timeout: webAuthnTimeout, TimeoutUVD: webAuthnTimeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: WebAuthn relying party: %w", err)
	}
	return wa, nil
}

// WebAuthnEnabled reports whether people can use security keys and
// passkeys: UsersConfig.Origin is an https origin with a domain name.
func (u *Users) WebAuthnEnabled() bool { return u.wa != nil }

// HasWebAuthn reports whether a user has registered a WebAuthn credential.
func HasWebAuthn(usr store.User) bool { return len(usr.WebAuthn) > 0 }

// HasTOTP reports whether a user has a confirmed authenticator app.
func HasTOTP(usr store.User) bool { return usr.MFASecret != nil && usr.MFALastStep >= 0 }

func webAuthnAAD(userID string) keys.AAD { return keys.AAD{Type: "ward.webauthn", ID: userID} }

// credentials opens a user's stored credentials; none is not an error.
func (u *Users) credentials(ctx context.Context, usr store.User) (webAuthnCreds, error) {
	if len(usr.WebAuthn) == 0 {
		return webAuthnCreds{Version: 1}, nil
	}
	dk, err := u.keys.DataKey(ctx, "")
	if err != nil {
		return webAuthnCreds{}, fmt.Errorf("auth: data key: %w", err)
	}
	plain, err := dk.Open(webAuthnAAD(usr.ID), usr.WebAuthn)
	if err != nil {
		return webAuthnCreds{}, fmt.Errorf("auth: open WebAuthn credentials: %w", err)
	}
	var c webAuthnCreds
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Version != 1 {
		return webAuthnCreds{}, fmt.Errorf("auth: decode WebAuthn credentials (version %d): %v", c.Version, err)
	}
	return c, nil
}

func (u *Users) sealCredentials(ctx context.Context, userID string, c webAuthnCreds) ([]byte, error) {
	if len(c.Creds) == 0 {
		return nil, nil
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	dk, err := u.keys.DataKey(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("auth: data key: %w", err)
	}
	return dk.Seal(webAuthnAAD(userID), plain)
}

// webAuthnState is a ceremony in progress, kept by the caller between
// Begin and Finish.
type webAuthnState struct {
	Kind    string               `json:"kind"` // "create" (registration) or "get" (sign-in)
	UserID  string               `json:"user_id"`
	Expires time.Time            `json:"expires"`
	Session webauthn.SessionData `json:"session"`
}

func (u *Users) newState(kind, userID string, s *webauthn.SessionData) ([]byte, error) {
	return json.Marshal(webAuthnState{Kind: kind, UserID: userID, Expires: u.cfg.Now().Add(webAuthnTimeout), Session: *s})
}

// state decodes a ceremony's state and checks that it is of this kind,
// for this user and not expired.
func (u *Users) state(raw []byte, kind, userID string) (webAuthnState, error) {
	var s webAuthnState
	if len(raw) == 0 {
		return s, fmt.Errorf("%w: no WebAuthn ceremony in progress", ErrMFAFailed)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("auth: decode WebAuthn ceremony: %w", err)
	}
	if s.Kind != kind || s.UserID != userID {
		return s, fmt.Errorf("%w: the WebAuthn ceremony is not this one", ErrMFAFailed)
	}
	if !u.cfg.Now().Before(s.Expires) {
		return s, fmt.Errorf("%w: the WebAuthn ceremony expired", ErrMFAFailed)
	}
	return s, nil
}

// BeginWebAuthnRegistration starts registering a security key or passkey
// as a user's first second factor. options is the JSON of the
// PublicKeyCredentialCreationOptions ({"publicKey": ...}) for the browser's
// navigator.credentials.create; state must be kept server-side and given
// to FinishWebAuthnRegistration. Like BeginTOTP it refuses a user who
// already has a second factor.
func (u *Users) BeginWebAuthnRegistration(ctx context.Context, id string) (options, state []byte, err error) {
	if u.wa == nil {
		return nil, nil, errWebAuthnOff
	}
	usr, err := u.st.User(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if HasMFA(usr) {
		return nil, nil, fmt.Errorf("%w: a second factor is already enrolled", ErrBadUser)
	}
	if IsFederated(usr) {
		return nil, nil, fmt.Errorf("%w: a person of an external provider has their second factor there", ErrBadUser)
	}
	creation, session, err := u.wa.BeginRegistration(webAuthnUser{usr: usr})
	if err != nil {
		return nil, nil, fmt.Errorf("auth: begin WebAuthn registration: %w", err)
	}
	if options, err = json.Marshal(creation); err != nil {
		return nil, nil, err
	}
	if state, err = u.newState("create", id, session); err != nil {
		return nil, nil, err
	}
	return options, state, nil
}

// FinishWebAuthnRegistration checks the browser's response (the
// PublicKeyCredential as JSON, binary fields base64url) against state and
// stores the new credential. It returns the amr value of the new factor
// (AMRHardwareKey or AMRSoftwareKey: making the credential proved
// possession of it) and one-time recovery codes, shown once. A response
// that fails any check wraps ErrMFAFailed.
func (u *Users) FinishWebAuthnRegistration(ctx context.Context, id string, state, response []byte) (method string, codes []string, err error) {
	if u.wa == nil {
		return "", nil, errWebAuthnOff
	}
	st, err := u.state(state, "create", id)
	if err != nil {
		return "", nil, err
	}
	if len(response) > maxWebAuthnResponse {
		return "", nil, fmt.Errorf("%w: WebAuthn response too large", ErrMFAFailed)
	}
	usr, err := u.st.User(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if HasMFA(usr) {
		return "", nil, fmt.Errorf("%w: a second factor is already enrolled", ErrBadUser)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s", ErrMFAFailed, describe(err))
	}
	cred, err := u.wa.CreateCredential(webAuthnUser{usr: usr}, st.Session, parsed)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s", ErrMFAFailed, describe(err))
	}
	now := u.cfg.Now().UTC().Truncate(time.Second)
	rec := webAuthnCred{
		ID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID,
		Flags: byte(cred.Flags.ProtocolValue()), AttestationType: cred.AttestationType, AttestationFmt: cred.AttestationFormat,
		Created: now, Name: credentialName(cred.Authenticator.Attachment, now),
	}
	for _, t := range cred.Transport {
		rec.Transports = append(rec.Transports, string(t))
	}
	sealed, err := u.sealCredentials(ctx, id, webAuthnCreds{Version: 1, Creds: []webAuthnCred{rec}})
	if err != nil {
		return "", nil, err
	}
	codes, encoded, err := credential.NewRecoveryCodes(10)
	if err != nil {
		return "", nil, err
	}
	if _, err := u.update(ctx, id, func(s *store.User) error {
		if HasMFA(*s) {
			return fmt.Errorf("%w: a second factor was enrolled meanwhile", ErrBadUser)
		}
		s.WebAuthn, s.Recovery = sealed, encoded
		s.MFASecret, s.MFALastStep = nil, 0 // an unconfirmed TOTP secret is dropped
		return nil
	}); err != nil {
		return "", nil, err
	}
	return rec.method(), codes, nil
}

func credentialName(a protocol.AuthenticatorAttachment, at time.Time) string {
	kind := "Security key or passkey"
	switch a {
	case protocol.Platform:
		kind = "Passkey on this device"
	case protocol.CrossPlatform:
		kind = "Security key"
	}
	return kind + ", added " + at.Format(time.DateOnly)
}

// BeginWebAuthnLogin starts a sign-in with one of the user's security keys
// or passkeys as the second factor. options is the JSON of the
// PublicKeyCredentialRequestOptions ({"publicKey": ...}) for the browser's
// navigator.credentials.get, naming the user's usable credentials; state
// must be kept server-side and given to FinishWebAuthnLogin. A user
// without a usable credential gets ErrMFANotSetUp.
func (u *Users) BeginWebAuthnLogin(ctx context.Context, id string) (options, state []byte, err error) {
	if u.wa == nil {
		return nil, nil, errWebAuthnOff
	}
	usr, err := u.st.User(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	options, session, err := u.beginAssertion(ctx, usr)
	if err != nil {
		return nil, nil, err
	}
	if state, err = u.newState("get", id, session); err != nil {
		return nil, nil, err
	}
	return options, state, nil
}

// beginAssertion starts an assertion ceremony over usr's usable
// credentials: the browser's options and the session to check it with.
func (u *Users) beginAssertion(ctx context.Context, usr store.User) (options []byte, session *webauthn.SessionData, err error) {
	creds, err := u.credentials(ctx, usr)
	if err != nil {
		return nil, nil, err
	}
	wu := webAuthnUser{usr: usr, creds: creds.Creds}
	if len(wu.WebAuthnCredentials()) == 0 {
		return nil, nil, ErrMFANotSetUp
	}
	assertion, session, err := u.wa.BeginLogin(wu)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: begin WebAuthn assertion: %w", err)
	}
	if options, err = json.Marshal(assertion); err != nil {
		return nil, nil, err
	}
	return options, session, nil
}

// FinishWebAuthnLogin checks the browser's assertion (the
// PublicKeyCredential as JSON) against state and the user's credentials,
// and returns the amr value of the credential used. Failures wrap
// ErrMFAFailed and count towards the same throttle as passwords; while the
// account is throttled no assertion is accepted. A signature counter that
// did not increase returns ErrAuthenticatorCloned and flags the credential.
func (u *Users) FinishWebAuthnLogin(ctx context.Context, id string, state, response []byte) (method string, err error) {
	if u.wa == nil {
		return "", errWebAuthnOff
	}
	st, err := u.state(state, "get", id)
	if err != nil {
		return "", err
	}
	usr, err := u.st.User(ctx, id)
	if err != nil {
		return "", err
	}
	now := u.cfg.Now()
	if now.Before(usr.LockedUntil) {
		return "", fmt.Errorf("%w: throttled", ErrMFAFailed)
	}
	return u.assert(ctx, usr, st.Session, response, true, func() { u.recordFailure(ctx, id, now) })
}

// assert checks an assertion against session and usr's credentials and
// accepts it once (see FinishWebAuthnLogin). refused is called when the
// response is malformed or fails the library's checks; a sign-in (login)
// that succeeds also clears the user's failed sign-ins.
func (u *Users) assert(ctx context.Context, usr store.User, session webauthn.SessionData, response []byte, login bool, refused func()) (method string, err error) {
	id, now := usr.ID, u.cfg.Now()
	creds, err := u.credentials(ctx, usr)
	if err != nil {
		return "", err
	}
	if len(response) > maxWebAuthnResponse {
		refused()
		return "", fmt.Errorf("%w: WebAuthn response too large", ErrMFAFailed)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		refused()
		return "", fmt.Errorf("%w: %s", ErrMFAFailed, describe(err))
	}
	cred, err := u.wa.ValidateLogin(webAuthnUser{usr: usr, creds: creds.Creds}, session, parsed)
	if err != nil {
		refused()
		return "", fmt.Errorf("%w: %s", ErrMFAFailed, describe(err))
	}
	challenge := sha256.Sum256([]byte(session.Challenge))
	counter := parsed.Response.AuthenticatorData.Counter
	flags := byte(cred.Flags.ProtocolValue())
	var cloned bool
	_, err = u.update(ctx, id, func(s *store.User) error {
		cloned = false
		c, err := u.credentials(ctx, *s)
		if err != nil {
			return err
		}
		if bytes.Equal(c.LastChallenge, challenge[:]) {
			return fmt.Errorf("%w: this WebAuthn assertion was used already", ErrMFAFailed)
		}
		i := c.find(cred.ID)
		if i < 0 || c.Creds[i].Cloned {
			return fmt.Errorf("%w: the credential was removed meanwhile", ErrMFAFailed)
		}
		rec := &c.Creds[i]
		if counter <= rec.SignCount && (counter != 0 || rec.SignCount != 0) {
			// Refuse and flag: a copy of the key, or a replay of an assertion.
			cloned = true
			rec.Cloned = true
			s.Failures++
			s.LockedUntil = u.cfg.Throttle.LockedUntil(s.Failures, now)
		} else {
			rec.SignCount, rec.Flags, rec.LastUsed = counter, flags, now.UTC().Truncate(time.Second)
			c.LastChallenge = challenge[:]
			method = rec.method()
			if login {
				s.Failures, s.LockedUntil = 0, time.Time{}
			}
		}
		s.WebAuthn, err = u.sealCredentials(ctx, s.ID, c)
		return err
	})
	if err != nil {
		return "", err
	}
	if cloned {
		return "", ErrAuthenticatorCloned
	}
	return method, nil
}

func (c webAuthnCreds) find(id []byte) int {
	for i, cr := range c.Creds {
		if bytes.Equal(cr.ID, id) {
			return i
		}
	}
	return -1
}

// describe names why the WebAuthn library refused a response, for logs
// and tests; it carries no secrets (the library's details name the check
// that failed).
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" {
			return pe.Details + ": " + pe.DevInfo
		}
		return pe.Details
	}
	return err.Error()
}
