package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/auth/credential"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
)

// The signing ceremony (21 CFR 11.200(a)): an electronic signature is made
// only after the signer enters their password and a second factor (a
// code from their authenticator app, or their security key or passkey)
// again, for that signing; a session or a token alone
// never signs. It is two steps:
//
//  1. Challenge: the person's token asks to sign one exact version with
//     one meaning; a single-use nonce (32 random bytes) is issued, bound
//     in the store to the token's user, that version and that meaning,
//     valid for a few minutes. Only its hash is stored.
//  2. Confirm: the person sends the nonce back with their password and a
//     TOTP code, or an assertion of their security key or passkey (see
//     below). The nonce is consumed first, whatever follows, so a
//     ceremony is never replayed; one presented by another user, for
//     another version or meaning is spent and refused, so a ceremony is
//     never borrowed. The TOTP code must be of a time step later than the
//     last one accepted (sign-in's replay rule), and a recovery code does
//     not sign.
//
// A person with a WebAuthn credential (and WebAuthn enabled) gets, with
// the nonce, an assertion challenge of its own: the options for the
// browser's navigator.credentials.get and the ceremony's state, sealed
// under the data key with the user and the nonce's hash as associated
// data, and naming the version and the meaning. The caller keeps the
// sealed state with the ceremony form; it cannot be opened for another
// user or nonce, nor changed. Confirm accepts the assertion in place of
// the TOTP code only for the nonce, user, version and meaning it was
// issued with, before the nonce expires, checked as sign-in checks one
// (user presence always, user verification as the sign-in policy asks),
// and once: the nonce is consumed first, and the credential's last
// challenge and signature counter refuse a replay in any process. The
// signature's methods then name the key (hwk or swk) instead of otp.
//
// Failed confirmations are throttled per user and per source address,
// with the counts in the store so that every replica sees them: each
// attempt is counted before anything is checked (credential.Throttle: a
// few free failures, then a delay that doubles up to a cap), and a
// success resets both counts. While either is throttled nothing is
// checked and the nonce is not consumed.

// ErrCeremony is wrapped by every failed signing ceremony. The signer
// sees only that the ceremony failed, never which part.
var ErrCeremony = errors.New("auth: signing ceremony failed")

// CeremonyError says why a ceremony failed, for the audit entry and the
// security event, and whether this failure throttled the user or the
// source.
type CeremonyError struct {
	Reason string // nonce, wrong-password, wrong-code, wrong-key, cloned-key, no-second-factor, disabled, throttled
	Locked bool   // this failure started a throttle
	// RetryAfter is set for Reason "throttled".
	RetryAfter time.Duration
}

func (e *CeremonyError) Error() string { return "auth: signing ceremony failed: " + e.Reason }

// Unwrap makes a CeremonyError an ErrCeremony.
func (e *CeremonyError) Unwrap() error { return ErrCeremony }

// SigningStore is what the ceremony needs of the store: nonces and the
// shared attempt counts. Every store.Store is one.
type SigningStore interface {
	CreateSignChallenge(ctx context.Context, c store.SignChallenge) error
	UseSignChallenge(ctx context.Context, c store.SignChallenge, now time.Time) error
	ClientAttempts(ctx context.Context, key string) (store.Attempts, error)
	SwapClientAttempts(ctx context.Context, key string, old, new store.Attempts) error
}

// SigningConfig configures the ceremony. Zero values mean the defaults.
type SigningConfig struct {
	ChallengeTTL time.Duration       // how long a nonce stays valid; default 5 minutes
	Throttle     credential.Throttle // per user and per source; default credential.DefaultThrottle
	Now          func() time.Time
}

// Signing runs signing ceremonies.
type Signing struct {
	cfg   SigningConfig
	users *Users
	st    SigningStore
}

// NewSigning returns the ceremony over users and st.
func NewSigning(cfg SigningConfig, users *Users, st SigningStore) (*Signing, error) {
	if users == nil || st == nil {
		return nil, errors.New("auth: signing needs users and a store")
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = 5 * time.Minute
	}
	if cfg.Throttle == (credential.Throttle{}) {
		cfg.Throttle = credential.DefaultThrottle
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Signing{cfg: cfg, users: users, st: st}, nil
}

// Signer is the person a ceremony is about: their id, printed name,
// whether they hold the right to sign, and (after Confirm) how they were
// authenticated.
type Signer struct {
	UserID  string
	Name    string
	Right   bool
	Methods []string
}

// Challenge is step 1's answer.
type Challenge struct {
	Nonce   string
	Expires time.Time
	Signer  Signer
	// KeyOptions and KeyState are set when the signer has a security key
	// or passkey: the JSON of the assertion's options for the browser
	// ({"publicKey": ...}) and its sealed state, for Confirmation.KeyState.
	KeyOptions, KeyState []byte
}

// signKeyState is the sealed state of a signing's assertion.
type signKeyState struct {
	webAuthnState
	Target  string `json:"target"`
	Meaning string `json:"meaning"`
}

func signKeyAAD(userID, nonce string) keys.AAD {
	return keys.AAD{Type: "ward.signing.webauthn", ID: userID + "/" + nonceHash(nonce)}
}

func signerOf(u store.User) Signer {
	return Signer{UserID: u.ID, Name: u.DisplayName, Right: u.Signing && !u.Disabled && strings.TrimSpace(u.DisplayName) != ""}
}

// Challenge issues a nonce for userID to sign target (an exact version)
// with meaning. It also says who the signer is and whether they hold the
// right, so that the caller decides before any ceremony.
func (s *Signing) Challenge(ctx context.Context, userID, target, meaning string) (Challenge, error) {
	u, err := s.users.User(ctx, userID)
	if err != nil {
		return Challenge{}, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Challenge{}, fmt.Errorf("auth: nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	exp := s.cfg.Now().Add(s.cfg.ChallengeTTL).UTC().Truncate(time.Microsecond)
	if err := s.st.CreateSignChallenge(ctx, store.SignChallenge{Nonce: nonceHash(nonce), UserID: userID, Target: target, Meaning: meaning, Expires: exp}); err != nil {
		return Challenge{}, fmt.Errorf("auth: store nonce: %w", err)
	}
	ch := Challenge{Nonce: nonce, Expires: exp, Signer: signerOf(u)}
	if s.users.wa == nil || !HasWebAuthn(u) || IsFederated(u) {
		return ch, nil
	}
	options, session, err := s.users.beginAssertion(ctx, u)
	if errors.Is(err, ErrMFANotSetUp) {
		return ch, nil // no usable key: the code alone
	}
	if err != nil {
		return Challenge{}, err
	}
	plain, err := json.Marshal(signKeyState{
		webAuthnState: webAuthnState{Kind: "sign", UserID: userID, Expires: exp, Session: *session},
		Target:        target, Meaning: meaning,
	})
	if err != nil {
		return Challenge{}, err
	}
	dk, err := s.users.keys.DataKey(ctx, "")
	if err != nil {
		return Challenge{}, fmt.Errorf("auth: data key: %w", err)
	}
	if ch.KeyState, err = dk.Seal(signKeyAAD(userID, nonce), plain); err != nil {
		return Challenge{}, fmt.Errorf("auth: seal WebAuthn ceremony: %w", err)
	}
	ch.KeyOptions = options
	return ch, nil
}

// Confirmation is step 2's input.
type Confirmation struct {
	UserID, Source  string // the token's user; the request's address
	Target, Meaning string
	Nonce           string
	Password, Code  string
	// Assertion is the browser's answer to the challenge's KeyOptions
	// (the PublicKeyCredential as JSON), with KeyState, in place of Code.
	Assertion, KeyState []byte
}

// Confirm runs step 2 (see above) and returns the signer.
func (s *Signing) Confirm(ctx context.Context, in Confirmation) (Signer, error) {
	now := s.cfg.Now()
	keys := []string{attemptKeyOf("user", in.UserID), attemptKeyOf("source", in.Source)}
	locked := false
	for _, k := range keys {
		n, err := s.take(ctx, k, now)
		if err != nil {
			return Signer{}, err
		}
		locked = locked || s.cfg.Throttle.LockedUntil(n.Failures, now).After(now)
	}
	fail := func(reason string) (Signer, error) {
		return Signer{}, &CeremonyError{Reason: reason, Locked: locked}
	}
	err := s.st.UseSignChallenge(ctx, store.SignChallenge{Nonce: nonceHash(in.Nonce), UserID: in.UserID, Target: in.Target, Meaning: in.Meaning}, now.UTC().Truncate(time.Microsecond))
	if errors.Is(err, store.ErrNotFound) {
		credential.DummyCheck(in.Password) // the same work as a wrong password
		return fail("nonce")
	}
	if err != nil {
		return Signer{}, fmt.Errorf("auth: nonce: %w", err)
	}
	u, err := s.users.User(ctx, in.UserID)
	if err != nil {
		return Signer{}, err
	}
	if IsFederated(u) || len(u.PasswordHash) == 0 {
		credential.DummyCheck(in.Password)
		return fail("wrong-password")
	}
	ok, _, err := credential.CheckPassword(u.PasswordHash, in.Password)
	if err != nil {
		return Signer{}, fmt.Errorf("auth: check password: %w", err)
	}
	if !ok {
		return fail("wrong-password")
	}
	if u.Disabled {
		return fail("disabled")
	}
	method := "otp"
	switch {
	case len(in.Assertion) > 0:
		method, err = s.checkKey(ctx, u, in)
		switch {
		case errors.Is(err, ErrAuthenticatorCloned):
			return fail("cloned-key")
		case errors.Is(err, ErrMFAFailed):
			return fail("wrong-key")
		case err != nil:
			return Signer{}, err
		}
	case !HasTOTP(u):
		return fail("no-second-factor")
	default:
		if err := s.users.checkTOTP(ctx, u, in.Code, now); err != nil {
			if errors.Is(err, ErrMFAFailed) {
				return fail("wrong-code")
			}
			return Signer{}, err
		}
	}
	for _, k := range keys {
		if err := s.reset(ctx, k); err != nil {
			return Signer{}, err
		}
	}
	got := signerOf(u)
	got.Methods = []string{"pwd", method}
	return got, nil
}

// checkKey checks in's assertion against the sealed state issued with
// its nonce and returns the key's method (hwk or swk). Every refusal
// wraps ErrMFAFailed.
func (s *Signing) checkKey(ctx context.Context, u store.User, in Confirmation) (string, error) {
	if s.users.wa == nil || !HasWebAuthn(u) || len(in.KeyState) == 0 {
		return "", fmt.Errorf("%w: no security key ceremony", ErrMFAFailed)
	}
	dk, err := s.users.keys.DataKey(ctx, "")
	if err != nil {
		return "", fmt.Errorf("auth: data key: %w", err)
	}
	plain, err := dk.Open(signKeyAAD(u.ID, in.Nonce), in.KeyState)
	if err != nil {
		return "", fmt.Errorf("%w: the security key ceremony is not this signing's", ErrMFAFailed)
	}
	var st signKeyState
	if err := json.Unmarshal(plain, &st); err != nil {
		return "", fmt.Errorf("auth: decode WebAuthn ceremony: %w", err)
	}
	switch {
	case st.Kind != "sign" || st.UserID != u.ID || st.Target != in.Target || st.Meaning != in.Meaning:
		return "", fmt.Errorf("%w: the security key ceremony is not this signing's", ErrMFAFailed)
	case !s.cfg.Now().Before(st.Expires):
		return "", fmt.Errorf("%w: the security key ceremony expired", ErrMFAFailed)
	}
	return s.users.assert(ctx, u, st.Session, in.Assertion, false, func() {})
}

// checkTOTP checks a TOTP code of u's (no recovery code), each time step
// once: the step is recorded with a compare-and-swap, so a code used
// once, for a sign-in or a signing, in any process, fails after.
func (u *Users) checkTOTP(ctx context.Context, usr store.User, code string, now time.Time) error {
	secret, err := u.open(ctx, usr.ID, usr.MFASecret)
	if err != nil {
		return err
	}
	step, err := credential.CheckTOTP(secret, code, now, usr.MFALastStep)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMFAFailed, err)
	}
	_, err = u.update(ctx, usr.ID, func(s *store.User) error {
		if step <= s.MFALastStep {
			return fmt.Errorf("%w: %w", ErrMFAFailed, credential.ErrTOTPReplayed)
		}
		s.MFALastStep = step
		return nil
	})
	return err
}

// take counts an attempt under key unless it is throttled.
func (s *Signing) take(ctx context.Context, key string, now time.Time) (store.Attempts, error) {
	for range maxAttemptSwaps {
		cur, err := s.st.ClientAttempts(ctx, key)
		if err != nil {
			return store.Attempts{}, fmt.Errorf("auth: signing attempts: %w", err)
		}
		if now.Before(cur.LockedUntil) {
			return store.Attempts{}, &CeremonyError{Reason: "throttled", RetryAfter: cur.LockedUntil.Sub(now)}
		}
		next := store.Attempts{Failures: cur.Failures + 1}
		next.LockedUntil = s.cfg.Throttle.LockedUntil(next.Failures, now).UTC().Truncate(time.Microsecond)
		err = s.st.SwapClientAttempts(ctx, key, cur, next)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return store.Attempts{}, fmt.Errorf("auth: count signing attempt: %w", err)
		}
		return next, nil
	}
	return store.Attempts{}, &CeremonyError{Reason: "throttled", RetryAfter: time.Second}
}

func (s *Signing) reset(ctx context.Context, key string) error {
	for range maxAttemptSwaps {
		cur, err := s.st.ClientAttempts(ctx, key)
		if err != nil {
			return fmt.Errorf("auth: signing attempts: %w", err)
		}
		if cur.IsZero() {
			return nil
		}
		if err := s.st.SwapClientAttempts(ctx, key, cur, store.Attempts{}); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("auth: reset signing attempts: %w", store.ErrConflict)
}

// attemptKeyOf is the store key of a signing's attempts by user or by
// source: a hash in the domain of signing attempts, apart from client
// ids' (attemptKey).
func attemptKeyOf(kind, value string) string {
	h := sha256.Sum256([]byte("ward signing attempts\x00" + kind + "\x00" + value))
	return base64URL(h[:])
}

func nonceHash(nonce string) string {
	h := sha256.Sum256([]byte("ward signing nonce\x00" + nonce))
	return hex.EncodeToString(h[:])
}

// SetSigning grants or withdraws a person's right to sign electronically
// (an administrator's act: ward user signing). Granting needs a printed
// name: name, or the one the person has. Withdrawing keeps the name, so
// that the person's past signatures still show who signed.
func (u *Users) SetSigning(ctx context.Context, id string, grant bool, name string) (store.User, error) {
	name = strings.TrimSpace(name)
	if len(name) > 200 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return store.User{}, fmt.Errorf("%w: a printed name is at most 200 characters, without control characters", ErrBadUser)
	}
	return u.update(ctx, id, func(s *store.User) error {
		if name != "" {
			s.DisplayName = name
		}
		if grant && s.DisplayName == "" {
			return fmt.Errorf("%w: the right to sign needs the person's printed name (--name)", ErrBadUser)
		}
		if grant && s.Disabled {
			return fmt.Errorf("%w: the account is disabled", ErrBadUser)
		}
		s.Signing = grant
		return nil
	})
}
