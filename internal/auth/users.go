package auth

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/wardhealth/ward/internal/auth/credential"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Errors of user management and sign-in. ErrSignInFailed is the only error
// a person signing in sees: an unknown name, a wrong password, a disabled
// account and a locked one are not told apart.
var (
	ErrSignInFailed = errors.New("auth: sign-in failed")
	ErrBadUser      = errors.New("auth: invalid user")
	ErrMFAFailed    = errors.New("auth: second factor rejected")
	ErrMFANotSetUp  = errors.New("auth: no second factor enrolled")
	// ErrUnknownUser wraps store.ErrNotFound for a user id that names no
	// user, so that callers above the store can tell.
	ErrUnknownUser = errors.New("auth: unknown user")
)

// User is a user as the store keeps it.
type User = store.User

// Sealer gives the data key that seals TOTP secrets at rest; *keys.Keyring
// is one.
type Sealer interface {
	DataKey(ctx context.Context, compartment string) (*keys.DataKey, error)
}

// UsersConfig configures user management. Zero values mean the defaults.
type UsersConfig struct {
	Issuer   string   // the name authenticator apps show; default "Ward"
	MFARoles []string // roles besides admin, auditor and privacy officer that need MFA
	Throttle credential.Throttle
	Now      func() time.Time
	// Origin is the https URL people sign in at, the OpenID issuer (e.g.
	// https://ward.example). Security keys and passkeys are bound to its
	// origin (scheme, host, port) and to its host name, the WebAuthn
	// relying party id. WebAuthn is off when Origin is empty or its host
	// is an IP address, which WebAuthn does not allow.
	Origin string
}

// Users manages the people who sign in to Ward: accounts, passwords,
// second factors, throttling. It is safe for concurrent use, also across
// replicas sharing a store: every change is a compare-and-swap on the
// user's revision.
type Users struct {
	cfg  UsersConfig
	st   store.Identity
	keys Sealer
	wa   *webauthn.WebAuthn // nil when WebAuthn is off
}

// NewUsers returns the user manager over st.
func NewUsers(cfg UsersConfig, st store.Identity, sealer Sealer) (*Users, error) {
	if st == nil || sealer == nil {
		return nil, errors.New("auth: users need a store and a sealer")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "Ward"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Throttle == (credential.Throttle{}) {
		cfg.Throttle = credential.DefaultThrottle
	}
	for _, r := range cfg.MFARoles {
		if !policy.ValidRoleName(r) {
			return nil, fmt.Errorf("auth: MFA role %q is not a role name", r)
		}
	}
	wa, err := newWebAuthn(cfg.Origin, cfg.Issuer)
	if err != nil {
		return nil, err
	}
	return &Users{cfg: cfg, st: st, keys: sealer, wa: wa}, nil
}

// NewUser is what creating a user needs.
type NewUser struct {
	Username string
	Role     string
	FHIRUser string // "Practitioner/123", "Patient/abc", "RelatedPerson/x" or ""
	Password string
}

// Create adds a user after checking the password policy. The username is
// lower-cased; the id is random and never reused.
func (u *Users) Create(ctx context.Context, n NewUser) (store.User, error) {
	name := NormaliseUsername(n.Username)
	if !validUsername(name) {
		return store.User{}, fmt.Errorf("%w: username must be 1-64 of a-z 0-9 . _ @ -", ErrBadUser)
	}
	if !policy.ValidRoleName(n.Role) {
		return store.User{}, fmt.Errorf("%w: role must be one of %s or a custom role name", ErrBadUser, strings.Join(policy.BuiltinRoles(), ", "))
	}
	if err := checkFHIRUser(n.FHIRUser); err != nil {
		return store.User{}, err
	}
	if err := credential.CheckPolicy(n.Password); err != nil {
		return store.User{}, err
	}
	hash, err := credential.HashPassword(n.Password)
	if err != nil {
		return store.User{}, fmt.Errorf("auth: hash password: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return store.User{}, err
	}
	usr := store.User{
		ID: id, Username: name, Role: n.Role, FHIRUser: n.FHIRUser,
		Created: u.cfg.Now().UTC().Truncate(time.Microsecond), PasswordHash: hash,
	}
	if err := u.st.CreateUser(ctx, usr); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, fmt.Errorf("%w: username is taken", ErrBadUser)
		}
		return store.User{}, fmt.Errorf("auth: create user: %w", err)
	}
	return usr, nil
}

// User returns a user by id; the error wraps ErrUnknownUser when there
// is none.
func (u *Users) User(ctx context.Context, id string) (store.User, error) {
	usr, err := u.st.User(ctx, id)
	return usr, unknownUser(err)
}

func unknownUser(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrUnknownUser, err)
	}
	return err
}

// Lookup returns a user by username.
func (u *Users) Lookup(ctx context.Context, username string) (store.User, error) {
	return u.st.UserByName(ctx, NormaliseUsername(username))
}

// List returns every user, in username order.
func (u *Users) List(ctx context.Context) ([]store.User, error) { return u.st.ListUsers(ctx) }

// update applies fn to the stored user and stores the result, retrying on
// a concurrent change.
func (u *Users) update(ctx context.Context, id string, fn func(*store.User) error) (store.User, error) {
	for range 8 {
		usr, err := u.st.User(ctx, id)
		if err != nil {
			return store.User{}, unknownUser(err)
		}
		if err := fn(&usr); err != nil {
			return store.User{}, err
		}
		got, err := u.st.UpdateUser(ctx, usr)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return got, err
	}
	return store.User{}, fmt.Errorf("auth: user %s: too many concurrent changes", id)
}

// SetPassword replaces a user's password (policy checked), ends every
// session and makes every token issued before now stop working.
func (u *Users) SetPassword(ctx context.Context, id, password string) error {
	if strings.HasPrefix(id, federatedPrefix) {
		return fmt.Errorf("%w: a person of an external provider has no password in Ward", ErrBadUser)
	}
	if err := credential.CheckPolicy(password); err != nil {
		return err
	}
	hash, err := credential.HashPassword(password)
	if err != nil {
		return fmt.Errorf("auth: hash password: %w", err)
	}
	if _, err := u.update(ctx, id, func(usr *store.User) error {
		usr.PasswordHash = hash
		usr.Failures, usr.LockedUntil = 0, time.Time{}
		usr.NotBefore = u.cfg.Now().UTC().Truncate(time.Second)
		return nil
	}); err != nil {
		return err
	}
	return u.st.EndUserSessions(ctx, id)
}

// SetDisabled disables (or enables) a user. Disabling ends every session
// and stops every token.
func (u *Users) SetDisabled(ctx context.Context, id string, disabled bool) error {
	if _, err := u.update(ctx, id, func(usr *store.User) error {
		usr.Disabled = disabled
		usr.NotBefore = u.cfg.Now().UTC().Truncate(time.Second)
		return nil
	}); err != nil {
		return err
	}
	return u.st.EndUserSessions(ctx, id)
}

// RevokeTokens ends every session of a user and stops every token issued
// to them until now (containment), leaving the account usable: the
// person signs in again.
func (u *Users) RevokeTokens(ctx context.Context, id string) error {
	if _, err := u.update(ctx, id, func(usr *store.User) error {
		usr.NotBefore = u.cfg.Now().UTC().Truncate(time.Second)
		return nil
	}); err != nil {
		return err
	}
	return u.st.EndUserSessions(ctx, id)
}

// SignInResult says how a password check went, for the audit entry.
type SignInResult struct {
	User store.User // set when the password was right
	// Tried is the id of the account the user name names, failure or
	// not; empty when no account has it.
	Tried  string
	Locked bool   // this failure locked the account for a while
	Detail string // "ok", "unknown", "external", "wrong-password", "disabled", "throttled"
}

// SignIn checks a username and password. Every failure returns
// ErrSignInFailed after the same work (one password hash); the result's
// Detail says why, for the audit entry only. While an account is throttled
// its password is not checked at all, so guessing gains nothing; the
// throttle grows with consecutive failures up to a cap, so nobody can lock
// a victim out for longer than that cap.
func (u *Users) SignIn(ctx context.Context, username, password string) (SignInResult, error) {
	now := u.cfg.Now()
	usr, err := u.st.UserByName(ctx, NormaliseUsername(username))
	if errors.Is(err, store.ErrNotFound) {
		credential.DummyCheck(password)
		return SignInResult{Detail: "unknown"}, ErrSignInFailed
	}
	if err != nil {
		return SignInResult{}, fmt.Errorf("auth: load user: %w", err)
	}
	if IsFederated(usr) || len(usr.PasswordHash) == 0 {
		// A person of an external provider signs in there, never here.
		credential.DummyCheck(password)
		return SignInResult{Tried: usr.ID, Detail: "external"}, ErrSignInFailed
	}
	if now.Before(usr.LockedUntil) {
		credential.DummyCheck(password)
		return SignInResult{Tried: usr.ID, Detail: "throttled"}, ErrSignInFailed
	}
	ok, rehash, err := credential.CheckPassword(usr.PasswordHash, password)
	if err != nil {
		return SignInResult{}, fmt.Errorf("auth: check password: %w", err)
	}
	if !ok {
		res := SignInResult{Tried: usr.ID, Detail: "wrong-password"}
		_, err := u.update(ctx, usr.ID, func(s *store.User) error {
			s.Failures++
			until := u.cfg.Throttle.LockedUntil(s.Failures, now)
			res.Locked = until.After(now) && !now.Before(s.LockedUntil)
			s.LockedUntil = until
			return nil
		})
		if err != nil {
			return SignInResult{}, fmt.Errorf("auth: record failure: %w", err)
		}
		return res, ErrSignInFailed
	}
	if usr.Disabled {
		return SignInResult{Tried: usr.ID, Detail: "disabled"}, ErrSignInFailed
	}
	if usr.Failures != 0 || rehash {
		usr, err = u.update(ctx, usr.ID, func(s *store.User) error {
			s.Failures, s.LockedUntil = 0, time.Time{}
			if rehash {
				if h, err := credential.HashPassword(password); err == nil {
					s.PasswordHash = h
				}
			}
			return nil
		})
		if err != nil {
			return SignInResult{}, fmt.Errorf("auth: reset failures: %w", err)
		}
	}
	return SignInResult{User: usr, Tried: usr.ID, Detail: "ok"}, nil
}

// MFARequired reports whether a user's role needs a second factor.
func (u *Users) MFARequired(usr store.User) bool {
	return slices.Contains(policy.PrivilegedRoles(), usr.Role) || slices.Contains(u.cfg.MFARoles, usr.Role)
}

// HasMFA reports whether a user has a confirmed second factor: an
// authenticator app or a security key or passkey.
func HasMFA(usr store.User) bool { return HasTOTP(usr) || HasWebAuthn(usr) }

func mfaAAD(userID string) keys.AAD { return keys.AAD{Type: "ward.mfa", ID: userID} }

func (u *Users) seal(ctx context.Context, userID string, secret []byte) ([]byte, error) {
	dk, err := u.keys.DataKey(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("auth: data key: %w", err)
	}
	return dk.Seal(mfaAAD(userID), secret)
}

func (u *Users) open(ctx context.Context, userID string, sealed []byte) ([]byte, error) {
	dk, err := u.keys.DataKey(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("auth: data key: %w", err)
	}
	return dk.Open(mfaAAD(userID), sealed)
}

// BeginTOTP starts TOTP enrolment: a new secret, sealed and stored as
// pending (it does not count until ConfirmTOTP), and the otpauth URI and QR
// image to show once. A confirmed factor is not replaced this way.
func (u *Users) BeginTOTP(ctx context.Context, id string) (uri string, png []byte, err error) {
	usr, err := u.st.User(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if HasMFA(usr) {
		return "", nil, fmt.Errorf("%w: a second factor is already enrolled", ErrBadUser)
	}
	if IsFederated(usr) {
		return "", nil, fmt.Errorf("%w: a person of an external provider has their second factor there", ErrBadUser)
	}
	secret, uri, png, err := credential.NewTOTP(u.cfg.Issuer, usr.Username)
	if err != nil {
		return "", nil, err
	}
	sealed, err := u.seal(ctx, id, secret)
	if err != nil {
		return "", nil, err
	}
	if _, err := u.update(ctx, id, func(s *store.User) error {
		if HasMFA(*s) {
			return fmt.Errorf("%w: a second factor is already enrolled", ErrBadUser)
		}
		s.MFASecret, s.MFALastStep = sealed, -1
		return nil
	}); err != nil {
		return "", nil, err
	}
	return uri, png, nil
}

// ConfirmTOTP completes enrolment with a code from the new secret and
// returns one-time recovery codes, shown once.
func (u *Users) ConfirmTOTP(ctx context.Context, id, code string) ([]string, error) {
	usr, err := u.st.User(ctx, id)
	if err != nil {
		return nil, err
	}
	if usr.MFASecret == nil || usr.MFALastStep >= 0 {
		return nil, ErrMFANotSetUp
	}
	secret, err := u.open(ctx, id, usr.MFASecret)
	if err != nil {
		return nil, err
	}
	step, err := credential.CheckTOTP(secret, code, u.cfg.Now(), -1)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMFAFailed, err)
	}
	codes, encoded, err := credential.NewRecoveryCodes(10)
	if err != nil {
		return nil, err
	}
	if _, err := u.update(ctx, id, func(s *store.User) error {
		if s.MFALastStep >= 0 || string(s.MFASecret) != string(usr.MFASecret) {
			return ErrMFANotSetUp // enrolment restarted meanwhile
		}
		s.MFALastStep, s.Recovery = step, encoded
		return nil
	}); err != nil {
		return nil, err
	}
	return codes, nil
}

// CheckSecondFactor checks a TOTP code (each time step once: a replayed
// code fails) or, failing that or when the user has no authenticator app,
// a recovery code (each once). Failures count towards the same throttle as
// passwords.
func (u *Users) CheckSecondFactor(ctx context.Context, id, code string) (method string, err error) {
	usr, err := u.st.User(ctx, id)
	if err != nil {
		return "", err
	}
	if !HasMFA(usr) {
		return "", ErrMFANotSetUp
	}
	now := u.cfg.Now()
	if now.Before(usr.LockedUntil) {
		return "", fmt.Errorf("%w: throttled", ErrMFAFailed)
	}
	step, terr := int64(0), credential.ErrRecoveryCodeWrong
	if HasTOTP(usr) {
		secret, err := u.open(ctx, id, usr.MFASecret)
		if err != nil {
			return "", err
		}
		step, terr = credential.CheckTOTP(secret, code, now, usr.MFALastStep)
	}
	var remaining []byte
	if terr != nil {
		var rerr error
		remaining, rerr = credential.UseRecoveryCode(usr.Recovery, code)
		if rerr != nil {
			u.recordFailure(ctx, id, now)
			return "", fmt.Errorf("%w: %w", ErrMFAFailed, terr)
		}
	}
	_, err = u.update(ctx, id, func(s *store.User) error {
		if terr == nil {
			if step <= s.MFALastStep {
				return fmt.Errorf("%w: %w", ErrMFAFailed, credential.ErrTOTPReplayed)
			}
			s.MFALastStep = step
		} else {
			if string(s.Recovery) != string(usr.Recovery) {
				return fmt.Errorf("%w: recovery codes changed meanwhile", ErrMFAFailed)
			}
			s.Recovery = remaining
		}
		s.Failures, s.LockedUntil = 0, time.Time{}
		return nil
	})
	if err != nil {
		return "", err
	}
	if terr == nil {
		return "otp", nil
	}
	return "recovery", nil
}

func (u *Users) recordFailure(ctx context.Context, id string, now time.Time) {
	_, _ = u.update(ctx, id, func(s *store.User) error {
		s.Failures++
		s.LockedUntil = u.cfg.Throttle.LockedUntil(s.Failures, now)
		return nil
	})
}

// RemoveMFA removes a user's second factors, authenticator app and
// security keys alike, and recovery codes (an administrator's action, for
// a lost device). The user must enrol again at the next sign-in if the
// role requires MFA.
func (u *Users) RemoveMFA(ctx context.Context, id string) error {
	if _, err := u.update(ctx, id, func(s *store.User) error {
		s.MFASecret, s.MFALastStep, s.Recovery, s.WebAuthn = nil, 0, nil, nil
		s.NotBefore = u.cfg.Now().UTC().Truncate(time.Second)
		return nil
	}); err != nil {
		return err
	}
	return u.st.EndUserSessions(ctx, id)
}

// NormaliseUsername lower-cases and trims a username.
func NormaliseUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validUsername(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("._@-", c)) {
			return false
		}
	}
	return true
}

func checkFHIRUser(s string) error {
	if s == "" {
		return nil
	}
	typ, id, ok := strings.Cut(s, "/")
	if !ok || (typ != "Practitioner" && typ != "Patient" && typ != "RelatedPerson" && typ != "Person") || !policy.ValidID(id) {
		return fmt.Errorf("%w: fhirUser must be Practitioner/<id>, Patient/<id>, RelatedPerson/<id> or Person/<id>", ErrBadUser)
	}
	return nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: random: %w", err)
	}
	return idEncoding.EncodeToString(b[:]), nil
}
