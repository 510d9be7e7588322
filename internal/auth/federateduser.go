package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/auth/federation"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// federatedPrefix starts the id of every person who signs in through an
// external OpenID provider (federation.Identity.UserID). Ward's own user
// ids are random base32 and never contain ':'.
const federatedPrefix = "ext:"

// maxFederatedID bounds a shadow user's id: "ext:", 16 hex digits, ':'
// and a subject of at most 255 characters.
const maxFederatedID = 4 + 16 + 1 + 255

// IsFederated reports whether usr is the shadow user of a person who
// signs in through an external OpenID provider: no password, no second
// factor of Ward's own, and a role and fhirUser that follow the
// provider's claims.
func IsFederated(usr store.User) bool { return strings.HasPrefix(usr.ID, federatedPrefix) }

// Federated provisions, or brings up to date, the shadow user of a person
// who has just signed in through an external OpenID provider (id comes
// from federation.Verifier.VerifyIDToken). The shadow user is an ordinary
// store.User, so grants, sessions, disabling (ward user disable) and the
// audit trail work as for anyone, with these differences:
//   - its id and username are id.UserID ("ext:<issuer hash>:<subject>"),
//     which contains ':' and so can never be a local username: no local
//     account can take it or be taken by it;
//   - it has no password hash, so the password form never signs it in,
//     and no second factor of Ward's: the provider's MFA evidence counts
//     for each sign-in;
//   - its role and fhirUser are the provider's mapping at every sign-in.
//     When they change, tokens issued before this sign-in stop working
//     and the person's other sessions and grants end, so that neither a
//     lost privilege nor another patient's record lingers.
//
// A disabled shadow user is returned unchanged: the caller refuses the
// sign-in.
func (u *Users) Federated(ctx context.Context, id federation.Identity) (store.User, error) {
	if !strings.HasPrefix(id.UserID, federatedPrefix) || len(id.UserID) > maxFederatedID || !printableID(id.UserID) {
		return store.User{}, fmt.Errorf("%w: not an external identity", ErrBadUser)
	}
	if !policy.ValidRoleName(id.Role) {
		return store.User{}, fmt.Errorf("%w: external identity without a valid role", ErrBadUser)
	}
	if err := checkFHIRUser(id.FHIRUser); err != nil {
		return store.User{}, err
	}
	now := u.cfg.Now().UTC()
	// Tokens issued before this sign-in are cut off when the mapping
	// changes; never later than now, or Ward's next tokens would be too.
	signedIn := id.AuthTime
	if signedIn.IsZero() {
		signedIn = id.IssuedAt
	}
	if signedIn.After(now) {
		signedIn = now
	}
	signedIn = signedIn.Truncate(time.Second)
	for range 8 {
		usr, err := u.st.User(ctx, id.UserID)
		if errors.Is(err, store.ErrNotFound) {
			usr = store.User{ID: id.UserID, Username: id.UserID, Role: id.Role, FHIRUser: id.FHIRUser, Created: now.Truncate(time.Microsecond)}
			err := u.st.CreateUser(ctx, usr)
			if errors.Is(err, store.ErrConflict) {
				continue // another replica provisioned it first
			}
			if err != nil {
				return store.User{}, fmt.Errorf("auth: create external user: %w", err)
			}
			return usr, nil
		}
		if err != nil {
			return store.User{}, fmt.Errorf("auth: load external user: %w", err)
		}
		if usr.Disabled || usr.Role == id.Role && usr.FHIRUser == id.FHIRUser {
			return usr, nil
		}
		usr.Role, usr.FHIRUser = id.Role, id.FHIRUser
		if signedIn.After(usr.NotBefore) {
			usr.NotBefore = signedIn
		}
		got, err := u.st.UpdateUser(ctx, usr)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return store.User{}, fmt.Errorf("auth: update external user: %w", err)
		}
		if err := u.st.EndUserSessions(ctx, usr.ID); err != nil {
			return store.User{}, fmt.Errorf("auth: end external user's sessions: %w", err)
		}
		return got, nil
	}
	return store.User{}, fmt.Errorf("auth: external user: too many concurrent changes")
}

// printableID reports whether s is printable ASCII without spaces.
func printableID(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}
