package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// identityTests are Run's tests of store.Identity and of app clients; each
// gets a fresh store.
var identityTests = []conformanceTest{
	{"Users", testUsers},
	{"UpdateUser", testUpdateUser},
	{"UpdateUserRace", func(t *testing.T, s store.Store) { testUpdateUserRace(t, s, s) }},
	{"Sessions", testSessions},
	{"EndSessions", testEndSessions},
	{"Grants", testGrants},
	{"RefreshTokens", testRefreshTokens},
	{"RefreshTokenRace", func(t *testing.T, s store.Store) { testRefreshTokenRace(t, s, s) }},
	{"AuthRequests", testAuthRequests},
	{"DeleteExpired", testDeleteExpired},
	{"AppClients", testAppClients},
}

// runSharedIdentity runs the identity tests that need two handles on one
// database: compare-and-swap updates from two processes.
func runSharedIdentity(t *testing.T, openPair func(t *testing.T) (store.Store, store.Store)) {
	t.Run("UpdateUserRace", func(t *testing.T) {
		a, b := openPair(t)
		testUpdateUserRace(t, a, b)
	})
	t.Run("RefreshTokenRace", func(t *testing.T) {
		a, b := openPair(t)
		testRefreshTokenRace(t, a, b)
	})
}

// fullUser has every field set to a value that differs from its zero.
func fullUser(id, username string) store.User {
	return store.User{
		ID: id, Username: username, Role: "clinician", FHIRUser: "Practitioner/" + id,
		Created: at(0), Disabled: true, Revision: 0,
		PasswordHash: []byte("$argon2id$" + id), MFASecret: []byte{0, 1, 2, 0xff}, MFALastStep: 57000000,
		Recovery: []byte("recovery\x00" + id), WebAuthn: []byte("webauthn\x00\xff" + id),
		Failures: 3, LockedUntil: at(30), NotBefore: at(5),
		DisplayName: "Zoë O'Brien, MD\n" + id, Signing: true,
	}
}

// sameUser compares every field, and tells a nil MFASecret or WebAuthn
// (not enrolled) from a set one.
func sameUser(a, b store.User) bool {
	return a.ID == b.ID && a.Username == b.Username && a.Role == b.Role && a.FHIRUser == b.FHIRUser &&
		a.Created.Equal(b.Created) && a.Disabled == b.Disabled && a.Revision == b.Revision &&
		bytes.Equal(a.PasswordHash, b.PasswordHash) && (a.MFASecret == nil) == (b.MFASecret == nil) &&
		bytes.Equal(a.MFASecret, b.MFASecret) && a.MFALastStep == b.MFALastStep &&
		bytes.Equal(a.Recovery, b.Recovery) && (a.WebAuthn == nil) == (b.WebAuthn == nil) &&
		bytes.Equal(a.WebAuthn, b.WebAuthn) && a.Failures == b.Failures &&
		a.LockedUntil.Equal(b.LockedUntil) && a.NotBefore.Equal(b.NotBefore) &&
		a.DisplayName == b.DisplayName && a.Signing == b.Signing
}

func usernames(us []store.User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Username)
	}
	return out
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.User(ctx, "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("User(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.UserByName(ctx, "zoe"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByName(unknown) = %v, want ErrNotFound", err)
	}
	if list, err := s.ListUsers(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListUsers on an empty store = %v, %v", list, err)
	}

	full := fullUser("u1", "zoe")
	// A user with every optional field at its zero value: zero times, nil
	// secrets, not enrolled in MFA.
	bare := store.User{ID: "u2", Username: "adam", Role: "patient", PasswordHash: []byte{1}}
	upper := fullUser("u3", "Zed")
	upper.MFASecret = nil
	for _, u := range []store.User{full, bare, upper} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser(%s) = %v", u.ID, err)
		}
	}
	dups := []struct {
		name string
		u    store.User
	}{
		{"duplicate id", store.User{ID: "u1", Username: "other", Role: "patient"}},
		{"duplicate username", store.User{ID: "u9", Username: "zoe", Role: "patient"}},
	}
	for _, d := range dups {
		if err := s.CreateUser(ctx, d.u); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateUser(%s) = %v, want ErrConflict", d.name, err)
		}
	}
	if _, err := s.User(ctx, "u9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused CreateUser stored a user: %v", err)
	}
	if _, err := s.UserByName(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused CreateUser stored a username: %v", err)
	}

	for _, want := range []store.User{full, bare, upper} {
		got, err := s.User(ctx, want.ID)
		if err != nil || !sameUser(got, want) {
			t.Errorf("User(%s) =\n %+v, %v; want\n %+v", want.ID, got, err, want)
		}
		byName, err := s.UserByName(ctx, want.Username)
		if err != nil || !sameUser(byName, want) {
			t.Errorf("UserByName(%s) = %+v, %v; want %+v", want.Username, byName, err, want)
		}
	}
	got, _ := s.User(ctx, "u2")
	if got.MFASecret != nil || got.Recovery != nil || got.WebAuthn != nil || !got.LockedUntil.IsZero() || !got.NotBefore.IsZero() || !got.Created.IsZero() {
		t.Errorf("zero fields did not read back as zero: %+v", got)
	}
	got, _ = s.User(ctx, "u1")
	if got.Created.Location() != time.UTC || got.LockedUntil.Location() != time.UTC {
		t.Errorf("user times are not UTC: %v, %v", got.Created.Location(), got.LockedUntil.Location())
	}
	// Usernames compare exactly: no case folding.
	if _, err := s.UserByName(ctx, "ZOE"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByName(ZOE) = %v, want ErrNotFound", err)
	}
	list, err := s.ListUsers(ctx)
	if want := []string{"Zed", "adam", "zoe"}; err != nil || !slices.Equal(usernames(list), want) {
		t.Fatalf("ListUsers = %v, %v; want usernames %v (bytewise order)", usernames(list), err, want)
	}
	if !sameUser(list[2], full) {
		t.Errorf("ListUsers[2] = %+v, want %+v", list[2], full)
	}
}

func testUpdateUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig := fullUser("u1", "zoe")
	orig.MFASecret = nil
	if err := s.CreateUser(ctx, orig); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, store.User{ID: "u2", Username: "mallory", Role: "patient"}); err != nil {
		t.Fatal(err)
	}

	next := orig
	next.Username = "someone-else" // ignored
	next.Created = at(99)          // ignored
	next.Role = "registrar"
	next.FHIRUser = ""
	next.Disabled = false
	next.PasswordHash = []byte("new hash")
	next.MFASecret = []byte("sealed totp")
	next.MFALastStep = 57000001
	next.Recovery = nil
	next.WebAuthn = []byte("sealed credentials")
	next.Failures = 0
	next.LockedUntil = time.Time{}
	next.NotBefore = at(50)
	got, err := s.UpdateUser(ctx, next)
	if err != nil {
		t.Fatalf("UpdateUser = %v", err)
	}
	want := next
	want.Username, want.Created, want.Revision = orig.Username, orig.Created, orig.Revision+1
	if !sameUser(got, want) {
		t.Fatalf("UpdateUser returned\n %+v; want\n %+v", got, want)
	}
	stored, err := s.User(ctx, "u1")
	if err != nil || !sameUser(stored, want) {
		t.Fatalf("User after update =\n %+v, %v; want\n %+v", stored, err, want)
	}
	if _, err := s.UserByName(ctx, "someone-else"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser changed the username: UserByName = %v", err)
	}

	// The same revision again is stale.
	stale := next
	stale.Role = "stale"
	if _, err := s.UpdateUser(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdateUser with a stale revision = %v, want ErrConflict", err)
	}
	future := got
	future.Revision = 7
	if _, err := s.UpdateUser(ctx, future); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdateUser with a revision ahead = %v, want ErrConflict", err)
	}
	if stored, _ := s.User(ctx, "u1"); !sameUser(stored, want) {
		t.Fatalf("a refused UpdateUser changed the user: %+v", stored)
	}

	// Un-enrolling MFA stores nil; the returned user feeds the next update.
	got.MFASecret, got.WebAuthn = nil, nil
	got, err = s.UpdateUser(ctx, got)
	if err != nil || got.Revision != 2 {
		t.Fatalf("second UpdateUser = revision %d, %v; want 2", got.Revision, err)
	}
	if stored, _ := s.User(ctx, "u1"); stored.MFASecret != nil || stored.WebAuthn != nil || stored.Revision != 2 {
		t.Fatalf("after clearing MFA: MFASecret %v, WebAuthn %v, revision %d; want nil, nil, 2", stored.MFASecret, stored.WebAuthn, stored.Revision)
	}
	if other, _ := s.User(ctx, "u2"); other.Revision != 0 || other.Role != "patient" {
		t.Errorf("updating one user changed another: %+v", other)
	}

	if _, err := s.UpdateUser(ctx, store.User{ID: "nobody", Username: "nobody"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateUser(unknown) = %v, want ErrNotFound", err)
	}
}

// testUpdateUserRace has goroutines on a and b (which may be the same store)
// update one user from the same revision: exactly one wins. Then each
// increments a counter with re-read and retry: no increment is lost.
func testUpdateUserRace(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	if err := a.CreateUser(ctx, store.User{ID: "u", Username: "race", Role: "patient"}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.UpdateUser(ctx, store.User{ID: "u", Role: fmt.Sprint("writer-", i)})
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both updated revision 0", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("writer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	got, err := b.User(ctx, "u")
	if err != nil || got.Revision != 1 || got.Role != fmt.Sprint("writer-", winner) {
		t.Fatalf("after the race: %+v, %v; want revision 1 by writer %d", got, err, winner)
	}

	const perWorker = 5
	wg = sync.WaitGroup{}
	fail := make(chan error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				if err := incrementFailures(t, s); err != nil {
					fail <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	got, err = a.User(ctx, "u")
	if err != nil || got.Failures != n*perWorker || got.Revision != 1+n*perWorker {
		t.Fatalf("after increments: failures %d, revision %d, %v; want %d, %d", got.Failures, got.Revision, err, n*perWorker, 1+n*perWorker)
	}
}

func incrementFailures(t *testing.T, s store.Store) error {
	for range 1000 {
		u, err := s.User(t.Context(), "u")
		if err != nil {
			return err
		}
		u.Failures++
		_, err = s.UpdateUser(t.Context(), u)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return errors.New("storetest: no progress after 1000 conflicts")
}

func sameSession(a, b store.Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Created.Equal(b.Created) && a.LastSeen.Equal(b.LastSeen) &&
		a.AuthTime.Equal(b.AuthTime) && a.MFATime.Equal(b.MFATime) && slices.Equal(a.AMR, b.AMR) && a.Ended == b.Ended
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Session(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Session(unknown) = %v, want ErrNotFound", err)
	}
	s1 := store.Session{ID: "s1", UserID: "u1", Created: at(0), LastSeen: at(0), AuthTime: at(0), AMR: []string{"pwd"}}
	s2 := store.Session{ID: "s2", UserID: "u1", Created: at(1), LastSeen: at(2), AuthTime: at(1), MFATime: at(2), AMR: []string{"pwd", "otp"}}
	for _, ss := range []store.Session{s1, s2} {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatalf("CreateSession(%s) = %v", ss.ID, err)
		}
	}
	if err := s.CreateSession(ctx, store.Session{ID: "s1", UserID: "u2", Created: at(3)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateSession = %v, want ErrConflict", err)
	}
	for _, want := range []store.Session{s1, s2} {
		got, err := s.Session(ctx, want.ID)
		if err != nil || !sameSession(got, want) {
			t.Fatalf("Session(%s) = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
	if got, _ := s.Session(ctx, "s1"); !got.MFATime.IsZero() {
		t.Errorf("zero MFATime read back as %v", got.MFATime)
	}

	// Without mfa only LastSeen moves.
	if err := s.TouchSession(ctx, "s1", at(10), nil); err != nil {
		t.Fatal(err)
	}
	want := s1
	want.LastSeen = at(10)
	if got, err := s.Session(ctx, "s1"); err != nil || !sameSession(got, want) {
		t.Fatalf("after TouchSession = %+v, %v; want %+v", got, err, want)
	}
	// With mfa, MFATime and AMR move too; the rest of mfa is ignored.
	mfa := &store.Session{ID: "ignored", UserID: "ignored", AuthTime: at(50), MFATime: at(11), AMR: []string{"pwd", "otp"}}
	if err := s.TouchSession(ctx, "s1", at(12), mfa); err != nil {
		t.Fatal(err)
	}
	want.LastSeen, want.MFATime, want.AMR = at(12), at(11), []string{"pwd", "otp"}
	if got, err := s.Session(ctx, "s1"); err != nil || !sameSession(got, want) {
		t.Fatalf("after TouchSession with mfa = %+v, %v; want %+v", got, err, want)
	}
	if got, _ := s.Session(ctx, "s2"); !sameSession(got, s2) {
		t.Errorf("touching s1 changed s2: %+v", got)
	}
	if err := s.TouchSession(ctx, "nope", at(13), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchSession(unknown) = %v, want ErrNotFound", err)
	}

	if err := s.EndSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	want.Ended = true
	if got, err := s.Session(ctx, "s1"); err != nil || !sameSession(got, want) {
		t.Fatalf("after EndSession = %+v, %v; want %+v", got, err, want)
	}
	if err := s.EndSession(ctx, "s1"); err != nil {
		t.Errorf("ending an ended session = %v, want nil", err)
	}
	if err := s.EndSession(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EndSession(unknown) = %v, want ErrNotFound", err)
	}
	if got, _ := s.Session(ctx, "s2"); got.Ended {
		t.Error("ending s1 ended s2")
	}
}

func sameGrant(a, b store.Grant) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.ClientID == b.ClientID && a.SessionID == b.SessionID &&
		a.Created.Equal(b.Created) && a.Revoked == b.Revoked
}

// revokedGrants returns which of ids are revoked.
func revokedGrants(t *testing.T, s store.Store, ids ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, id := range ids {
		g, err := s.Grant(t.Context(), id)
		if err != nil {
			t.Fatalf("Grant(%s) = %v", id, err)
		}
		out[id] = g.Revoked
	}
	return out
}

// testEndSessions checks which sessions and grants EndSession and
// EndUserSessions end and revoke, and which they leave alone.
func testEndSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	sessions := []store.Session{
		{ID: "s1", UserID: "u1", Created: at(0)},
		{ID: "s2", UserID: "u1", Created: at(1)},
		{ID: "s3", UserID: "u2", Created: at(2)},
	}
	for _, ss := range sessions {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatal(err)
		}
	}
	grants := []store.Grant{
		{ID: "g1", UserID: "u1", ClientID: "app", SessionID: "s1", Created: at(3)},
		{ID: "g2", UserID: "u1", ClientID: "other", SessionID: "s1", Created: at(3)},
		{ID: "g3", UserID: "u1", ClientID: "app", SessionID: "s2", Created: at(4)},
		{ID: "g4", UserID: "u2", ClientID: "app", SessionID: "s3", Created: at(5)},
		{ID: "g5", UserID: "u1", ClientID: "app", SessionID: "gone", Created: at(6)},
	}
	for _, g := range grants {
		if err := s.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"g1", "g2", "g3", "g4", "g5"}

	if err := s.EndSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"g1": true, "g2": true, "g3": false, "g4": false, "g5": false}
	if got := revokedGrants(t, s, all...); !maps.Equal(got, want) {
		t.Fatalf("revoked after EndSession(s1) = %v, want %v", got, want)
	}
	if err := s.EndSession(ctx, "unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("EndSession(unknown) = %v, want ErrNotFound", err)
	}

	if err := s.EndUserSessions(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	want = map[string]bool{"g1": true, "g2": true, "g3": true, "g4": false, "g5": true}
	if got := revokedGrants(t, s, all...); !maps.Equal(got, want) {
		t.Fatalf("revoked after EndUserSessions(u1) = %v, want %v", got, want)
	}
	for _, c := range []struct {
		id    string
		ended bool
	}{{"s1", true}, {"s2", true}, {"s3", false}} {
		if got, err := s.Session(ctx, c.id); err != nil || got.Ended != c.ended {
			t.Errorf("Session(%s).Ended = %v, %v; want %v", c.id, got.Ended, err, c.ended)
		}
	}
	if err := s.EndUserSessions(ctx, "nobody"); err != nil {
		t.Errorf("EndUserSessions for a user without sessions = %v, want nil", err)
	}
}

func testGrants(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Grant(ctx, "g1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Grant(unknown) = %v, want ErrNotFound", err)
	}
	g1 := store.Grant{ID: "g1", UserID: "u1", ClientID: "app", SessionID: "s1", Created: at(0)}
	g2 := store.Grant{ID: "g2", UserID: "u1", ClientID: "app", SessionID: "s1", Created: at(1)}
	for _, g := range []store.Grant{g1, g2} {
		if err := s.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateGrant(ctx, store.Grant{ID: "g1", UserID: "u2", ClientID: "x", Created: at(2)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateGrant = %v, want ErrConflict", err)
	}
	if got, err := s.Grant(ctx, "g1"); err != nil || !sameGrant(got, g1) {
		t.Fatalf("Grant = %+v, %v; want %+v", got, err, g1)
	}
	if err := s.RevokeGrant(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeGrant(ctx, "g1"); err != nil {
		t.Errorf("revoking a revoked grant = %v, want nil", err)
	}
	if err := s.RevokeGrant(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeGrant(unknown) = %v, want ErrNotFound", err)
	}
	g1.Revoked = true
	if got, err := s.Grant(ctx, "g1"); err != nil || !sameGrant(got, g1) {
		t.Fatalf("Grant after revoke = %+v, %v; want %+v", got, err, g1)
	}
	if got, err := s.Grant(ctx, "g2"); err != nil || !sameGrant(got, g2) {
		t.Fatalf("revoking g1 changed g2: %+v, %v", got, err)
	}
}

func sameRefresh(a, b store.RefreshToken) bool {
	return a.ID == b.ID && a.GrantID == b.GrantID && bytes.Equal(a.Data, b.Data) &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && a.Used == b.Used
}

func testRefreshTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.RefreshToken(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RefreshToken(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.UseRefreshToken(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UseRefreshToken(unknown) = %v, want ErrNotFound", err)
	}
	t1 := store.RefreshToken{ID: "t1", GrantID: "g1", Data: []byte("request\x00data"), Created: at(0), Expires: at(3600)}
	t2 := store.RefreshToken{ID: "t2", GrantID: "g1", Data: []byte("next"), Created: at(1), Expires: at(3601)}
	for _, tok := range []store.RefreshToken{t1, t2} {
		if err := s.CreateRefreshToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRefreshToken(ctx, store.RefreshToken{ID: "t1", GrantID: "g2", Expires: at(9)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateRefreshToken = %v, want ErrConflict", err)
	}
	if got, err := s.RefreshToken(ctx, "t1"); err != nil || !sameRefresh(got, t1) {
		t.Fatalf("RefreshToken = %+v, %v; want %+v", got, err, t1)
	}
	if err := s.UseRefreshToken(ctx, "t1"); err != nil {
		t.Fatalf("first UseRefreshToken = %v", err)
	}
	if err := s.UseRefreshToken(ctx, "t1"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second UseRefreshToken = %v, want ErrConflict (reuse)", err)
	}
	t1.Used = true
	if got, err := s.RefreshToken(ctx, "t1"); err != nil || !sameRefresh(got, t1) {
		t.Fatalf("RefreshToken after use = %+v, %v; want %+v", got, err, t1)
	}
	if got, err := s.RefreshToken(ctx, "t2"); err != nil || !sameRefresh(got, t2) {
		t.Fatalf("using t1 changed t2: %+v, %v", got, err)
	}
}

// testRefreshTokenRace presents one refresh token from many goroutines on a
// and b at once: exactly one may rotate it, the others see reuse.
func testRefreshTokenRace(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	const rounds, n = 5, 8
	for r := range rounds {
		id := fmt.Sprint("race-", r)
		if err := a.CreateRefreshToken(ctx, store.RefreshToken{ID: id, GrantID: "g", Created: at(0), Expires: at(60)}); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.UseRefreshToken(ctx, id)
			}()
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d, user %d: %v, want nil or ErrConflict", r, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d callers used the token, want exactly 1", r, wins)
		}
	}
}

func sameAuthRequest(a, b store.AuthRequest) bool {
	return a.ID == b.ID && a.Code == b.Code && bytes.Equal(a.Data, b.Data) && a.Expires.Equal(b.Expires)
}

func testAuthRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.AuthRequest(ctx, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AuthRequest(unknown) = %v, want ErrNotFound", err)
	}
	r1 := store.AuthRequest{ID: "r1", Data: []byte("pkce\x00challenge"), Expires: at(600)}
	r2 := store.AuthRequest{ID: "r2", Data: []byte("other"), Expires: at(601)}
	// Two requests without a code yet may coexist.
	for _, r := range []store.AuthRequest{r1, r2} {
		if err := s.PutAuthRequest(ctx, r); err != nil {
			t.Fatalf("PutAuthRequest(%s) = %v", r.ID, err)
		}
	}
	if got, err := s.AuthRequest(ctx, "r1"); err != nil || !sameAuthRequest(got, r1) {
		t.Fatalf("AuthRequest = %+v, %v; want %+v", got, err, r1)
	}
	// An empty code was never issued: it finds nothing, though rows hold it.
	for _, code := range []string{"", "nope"} {
		if _, err := s.AuthRequestByCode(ctx, code); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AuthRequestByCode(%q) = %v, want ErrNotFound", code, err)
		}
	}

	// Issuing the code replaces the whole request.
	issued := store.AuthRequest{ID: "r1", Code: "code-hash-1", Data: []byte("with user"), Expires: at(660)}
	if err := s.PutAuthRequest(ctx, issued); err != nil {
		t.Fatalf("PutAuthRequest replacing r1 = %v", err)
	}
	if got, err := s.AuthRequest(ctx, "r1"); err != nil || !sameAuthRequest(got, issued) {
		t.Fatalf("AuthRequest after replace = %+v, %v; want %+v", got, err, issued)
	}
	if got, err := s.AuthRequestByCode(ctx, "code-hash-1"); err != nil || !sameAuthRequest(got, issued) {
		t.Fatalf("AuthRequestByCode = %+v, %v; want %+v", got, err, issued)
	}
	// A code names one request.
	clash := r2
	clash.Code = "code-hash-1"
	if err := s.PutAuthRequest(ctx, clash); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutAuthRequest with another request's code = %v, want ErrConflict", err)
	}
	if got, err := s.AuthRequest(ctx, "r2"); err != nil || !sameAuthRequest(got, r2) {
		t.Fatalf("a refused PutAuthRequest changed r2: %+v, %v", got, err)
	}

	if err := s.DeleteAuthRequest(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthRequest(ctx, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AuthRequest after delete = %v, want ErrNotFound", err)
	}
	if _, err := s.AuthRequestByCode(ctx, "code-hash-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AuthRequestByCode after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAuthRequest(ctx, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteAuthRequest = %v, want ErrNotFound", err)
	}
	if _, err := s.AuthRequest(ctx, "r2"); err != nil {
		t.Fatalf("deleting r1 deleted r2: %v", err)
	}

	// Of concurrent deletes exactly one succeeds, so a code is exchanged once.
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.DeleteAuthRequest(ctx, "r2")
		}()
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("delete %d: %v, want nil or ErrNotFound", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent deletes succeeded, want exactly 1", wins)
	}
}

func testDeleteExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(100)
	expiries := map[string]time.Time{
		"old":     at(10),
		"just":    now.Add(-time.Microsecond),
		"now":     now,
		"later":   at(200),
		"zeroexp": {},
	}
	for name, exp := range expiries {
		if err := s.PutAuthRequest(ctx, store.AuthRequest{ID: "r-" + name, Code: "c-" + name, Expires: exp}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshToken(ctx, store.RefreshToken{ID: "t-" + name, GrantID: "g", Created: at(0), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, store.Session{ID: "s", UserID: "u", Created: at(0), LastSeen: at(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGrant(ctx, store.Grant{ID: "g", UserID: "u", ClientID: "app", SessionID: "s", Created: at(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteExpired(ctx, now); err != nil {
		t.Fatal(err)
	}
	for name, exp := range expiries {
		wantGone := exp.Before(now)
		_, errR := s.AuthRequest(ctx, "r-"+name)
		_, errT := s.RefreshToken(ctx, "t-"+name)
		for _, c := range []struct {
			what string
			err  error
		}{{"auth request", errR}, {"refresh token", errT}} {
			gone := errors.Is(c.err, store.ErrNotFound)
			if (c.err != nil && !gone) || gone != wantGone {
				t.Errorf("%s expiring %s: after DeleteExpired err = %v, want gone=%v", c.what, name, c.err, wantGone)
			}
		}
	}
	if _, err := s.Session(ctx, "s"); err != nil {
		t.Errorf("DeleteExpired removed a session: %v", err)
	}
	if _, err := s.Grant(ctx, "g"); err != nil {
		t.Errorf("DeleteExpired removed a grant: %v", err)
	}
}

// testAppClients checks the fields of clients that sign people in: redirect
// URIs, and public clients without a secret.
func testAppClients(t *testing.T, s store.Store) {
	ctx := t.Context()
	public := store.Client{ID: "spa", Name: "Web app", Scopes: []string{"openid", "patient/*.rs"}, Created: at(0),
		RedirectURIs: []string{"https://app.example/callback", "http://127.0.0.1:8080/cb?x=1&y=%20"}}
	service := store.Client{ID: "svc", Name: "Service", SecretHash: []byte{1, 2}, Scopes: []string{"system/*.read"}, Created: at(1)}
	for _, c := range []store.Client{public, service} {
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatalf("CreateClient(%s) = %v", c.ID, err)
		}
	}
	check := func(got, want store.Client) {
		t.Helper()
		if !sameClient(got, want) || !slices.Equal(got.RedirectURIs, want.RedirectURIs) || (got.SecretHash == nil) != (want.SecretHash == nil) {
			t.Errorf("client %s = %+v; want %+v", want.ID, got, want)
		}
	}
	for _, want := range []store.Client{public, service} {
		got, err := s.Client(ctx, want.ID)
		if err != nil {
			t.Fatalf("Client(%s) = %v", want.ID, err)
		}
		check(got, want)
	}
	if got, _ := s.Client(ctx, "spa"); got.SecretHash != nil {
		t.Errorf("public client SecretHash = %v, want nil", got.SecretHash)
	}
	if got, _ := s.Client(ctx, "svc"); len(got.RedirectURIs) != 0 {
		t.Errorf("service client RedirectURIs = %q, want none", got.RedirectURIs)
	}
	list, err := s.ListClients(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListClients = %+v, %v", list, err)
	}
	check(list[0], public)
	check(list[1], service)

	for _, bad := range [][]string{{"https://a.example/cb x"}, {""}, {"https://a.example/\ncb"}} {
		c := store.Client{ID: "bad", Name: "Bad", Created: at(2), RedirectURIs: bad}
		if err := s.CreateClient(ctx, c); err == nil {
			t.Errorf("CreateClient with redirect URIs %q succeeded, want an error", bad)
		}
	}
	if _, err := s.Client(ctx, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused CreateClient stored a client: %v", err)
	}
}
