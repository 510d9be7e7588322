package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/auth/federation"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

func extIdentity(sub, role, fhirUser string, authTime time.Time) federation.Identity {
	return federation.Identity{
		Issuer: "https://idp.example", IssuerName: "idp", UserID: "ext:0123456789abcdef:" + sub, Subject: sub,
		Role: role, FHIRUser: fhirUser, AuthTime: authTime, IssuedAt: authTime.Add(time.Second),
	}
}

// TestFederatedUser: the first sign-in provisions a shadow user with the
// provider's mapping and nothing to sign in with locally; the same
// mapping changes nothing; a new mapping is applied and cuts off what the
// old one issued; a disabled shadow user is left as it is.
func TestFederatedUser(t *testing.T) {
	f := newWAFixture(t, "https://ward.example")
	ctx := context.Background()
	now := f.clock.Now().UTC().Truncate(time.Second)
	id := extIdentity("Alice.Smith", policy.RolePatient, "Patient/p1", now.Add(-time.Minute))

	usr, err := f.users.Federated(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if usr.ID != id.UserID || usr.Username != id.UserID || usr.Role != policy.RolePatient || usr.FHIRUser != "Patient/p1" ||
		len(usr.PasswordHash) != 0 || HasMFA(usr) || !IsFederated(usr) || usr.Disabled {
		t.Fatalf("shadow user %+v", usr)
	}
	stored := func() store.User {
		t.Helper()
		u, err := f.users.User(ctx, id.UserID)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	first := stored()
	if again, err := f.users.Federated(ctx, id); err != nil || again.Revision != first.Revision || stored().Revision != first.Revision {
		t.Fatalf("same mapping rewrote the user: %+v %v", again, err)
	}

	// A session and a grant of the old mapping end when it changes.
	sess := store.Session{ID: "s1", UserID: id.UserID, Created: now, LastSeen: now, AuthTime: id.AuthTime}
	if err := f.st.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateGrant(ctx, store.Grant{ID: "g1", UserID: id.UserID, ClientID: "app", SessionID: "s1", Created: now}); err != nil {
		t.Fatal(err)
	}
	later := extIdentity("Alice.Smith", policy.RolePractitioner, "Practitioner/d1", now)
	usr, err = f.users.Federated(ctx, later)
	if err != nil || usr.Role != policy.RolePractitioner || usr.FHIRUser != "Practitioner/d1" || !usr.NotBefore.Equal(now) {
		t.Fatalf("new mapping: %+v %v", usr, err)
	}
	if s, err := f.st.Session(ctx, "s1"); err != nil || !s.Ended {
		t.Errorf("session of the old mapping: %+v %v", s, err)
	}
	if g, err := f.st.Grant(ctx, "g1"); err != nil || !g.Revoked {
		t.Errorf("grant of the old mapping: %+v %v", g, err)
	}

	// An auth_time ahead of Ward's clock never moves NotBefore past now.
	ahead := extIdentity("Alice.Smith", policy.RolePatient, "", now.Add(time.Hour))
	if usr, err = f.users.Federated(ctx, ahead); err != nil || usr.NotBefore.After(f.clock.Now()) {
		t.Fatalf("NotBefore %v after now %v (%v)", usr.NotBefore, f.clock.Now(), err)
	}

	if err := f.users.SetDisabled(ctx, id.UserID, true); err != nil {
		t.Fatal(err)
	}
	usr, err = f.users.Federated(ctx, extIdentity("Alice.Smith", policy.RoleAdmin, "", now))
	if err != nil || !usr.Disabled || usr.Role != policy.RolePatient {
		t.Fatalf("disabled shadow user: %+v %v", usr, err)
	}
}

// TestFederatedUserHasNoLocalCredentials: the password form, a new
// password and Ward's own second factors are closed to a shadow user.
func TestFederatedUserHasNoLocalCredentials(t *testing.T) {
	f := newWAFixture(t, "https://ward.example")
	ctx := context.Background()
	id := extIdentity("bob", policy.RoleAdmin, "", f.clock.Now())
	usr, err := f.users.Federated(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{usr.Username, " " + usr.Username + " "} {
		res, err := f.users.SignIn(ctx, name, "")
		if !errors.Is(err, ErrSignInFailed) || res.Detail != "external" {
			t.Errorf("password sign-in as %q: %+v %v", name, res, err)
		}
	}
	if err := f.users.SetPassword(ctx, usr.ID, "a perfectly fine passphrase 7"); !errors.Is(err, ErrBadUser) {
		t.Errorf("SetPassword: %v", err)
	}
	if _, _, err := f.users.BeginTOTP(ctx, usr.ID); !errors.Is(err, ErrBadUser) {
		t.Errorf("BeginTOTP: %v", err)
	}
	if _, _, err := f.users.BeginWebAuthnRegistration(ctx, usr.ID); !errors.Is(err, ErrBadUser) {
		t.Errorf("BeginWebAuthnRegistration: %v", err)
	}
	if u, _ := f.users.User(ctx, usr.ID); len(u.PasswordHash) != 0 || len(u.MFASecret) != 0 {
		t.Errorf("shadow user gained credentials: %+v", u)
	}
}

// TestFederatedUserRefusesMalformed: only namespaced external ids with a
// role and a well-formed fhirUser become users.
func TestFederatedUserRefusesMalformed(t *testing.T) {
	f := newWAFixture(t, "https://ward.example")
	now := f.clock.Now()
	ok := extIdentity("carol", policy.RolePractitioner, "", now)
	for name, mut := range map[string]func(*federation.Identity){
		"local id":          func(i *federation.Identity) { i.UserID = "abcdefgh" },
		"space in id":       func(i *federation.Identity) { i.UserID = "ext:0123456789abcdef:a b" },
		"control character": func(i *federation.Identity) { i.UserID = "ext:0123456789abcdef:a\x00" },
		"too long":          func(i *federation.Identity) { i.UserID = "ext:0123456789abcdef:" + string(make([]byte, 300)) },
		"no role":           func(i *federation.Identity) { i.Role = "" },
		"bad role":          func(i *federation.Identity) { i.Role = "Admin!" },
		"bad fhirUser":      func(i *federation.Identity) { i.FHIRUser = "Observation/1" },
	} {
		id := ok
		mut(&id)
		if _, err := f.users.Federated(context.Background(), id); !errors.Is(err, ErrBadUser) {
			t.Errorf("%s: %v, want ErrBadUser", name, err)
		}
	}
}

// TestFederatedUserConcurrentFirstSignIn: two replicas provisioning the
// same person at once end with one user and no error.
func TestFederatedUserConcurrentFirstSignIn(t *testing.T) {
	f := newWAFixture(t, "https://ward.example")
	id := extIdentity("dave", policy.RolePractitioner, "", f.clock.Now())
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = f.users.Federated(context.Background(), id) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all, err := f.users.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range all {
		if u.ID == id.UserID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d shadow users for one person", n)
	}
}
