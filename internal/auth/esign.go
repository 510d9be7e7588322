package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/auth/credential"
	"github.com/wardhealth/ward/internal/store"
)

// The signing ceremony (21 CFR 11.200(a)): an electronic signature is made
// only after the signer enters their password and a code from their
// authenticator app again, for that signing; a session or a token alone
// never signs. It is two steps:
//
//  1. Challenge: the person's token asks to sign one exact version with
//     one meaning; a single-use nonce (32 random bytes) is issued, bound
//     in the store to the token's user, that version and that meaning,
//     valid for a few minutes. Only its hash is stored.
//  2. Confirm: the person sends the nonce back with their password and a
//     TOTP code. The nonce is consumed first, whatever follows, so a
//     ceremony is never replayed; one presented by another user, for
//     another version or meaning is spent and refused, so a ceremony is
//     never borrowed. The TOTP code must be of a time step later than the
//     last one accepted (sign-in's replay rule), and a recovery code does
//     not sign.
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
	Reason string // nonce, wrong-password, wrong-code, no-second-factor, disabled, throttled
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
	return Challenge{Nonce: nonce, Expires: exp, Signer: signerOf(u)}, nil
}

// Confirmation is step 2's input.
type Confirmation struct {
	UserID, Source  string // the token's user; the request's address
	Target, Meaning string
	Nonce           string
	Password, Code  string
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
	if !HasTOTP(u) {
		return fail("no-second-factor")
	}
	if err := s.users.checkTOTP(ctx, u, in.Code, now); err != nil {
		if errors.Is(err, ErrMFAFailed) {
			return fail("wrong-code")
		}
		return Signer{}, err
	}
	for _, k := range keys {
		if err := s.reset(ctx, k); err != nil {
			return Signer{}, err
		}
	}
	got := signerOf(u)
	got.Methods = []string{"pwd", "otp"}
	return got, nil
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
