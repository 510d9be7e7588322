package auth

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// A signature names its signer by user id for ever (21 CFR 11.100(a)):
// Ward never deletes a user (disabling is what it has), a disabled
// user's id and name stay taken, a new person gets a new id, and the
// store refuses a second user under an existing id. The right to sign
// needs a printed name, is not granted to a disabled account, and its
// withdrawal keeps the name that past signatures show.
func TestUserIDsNeverReusedAndSigningRight(t *testing.T) {
	f := newWAFixture(t, "")
	ctx := context.Background()
	first := f.user
	if _, err := f.users.SetSigning(ctx, first.ID, true, ""); !errors.Is(err, ErrBadUser) {
		t.Fatalf("granted without a printed name: %v", err)
	}
	if _, err := f.users.SetSigning(ctx, first.ID, true, "Ada\nLovelace"); !errors.Is(err, ErrBadUser) {
		t.Fatalf("a printed name with a control character: %v", err)
	}
	u, err := f.users.SetSigning(ctx, first.ID, true, "Ada Lovelace, MD")
	if err != nil || !u.Signing || u.DisplayName != "Ada Lovelace, MD" {
		t.Fatalf("grant: %+v %v", u, err)
	}
	if u, err = f.users.SetSigning(ctx, first.ID, false, ""); err != nil || u.Signing || u.DisplayName != "Ada Lovelace, MD" {
		t.Fatalf("withdraw: %+v %v", u, err)
	}
	// "Deleting" a person: Ward disables.
	if err := f.users.SetDisabled(ctx, first.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.users.SetSigning(ctx, first.ID, true, ""); !errors.Is(err, ErrBadUser) {
		t.Fatalf("granted to a disabled account: %v", err)
	}
	if _, err := f.users.Create(ctx, NewUser{Username: "ada", Role: policy.RolePractitioner, Password: "correct horse battery staple"}); !errors.Is(err, ErrBadUser) {
		t.Fatalf("a disabled person's name was given to another: %v", err)
	}
	seen := map[string]bool{first.ID: true}
	for range 50 {
		u, err := f.users.Create(ctx, NewUser{Username: "p" + randomSuffix(t), Role: policy.RolePractitioner, Password: "correct horse battery staple"})
		if err != nil {
			t.Fatal(err)
		}
		if seen[u.ID] {
			t.Fatalf("user id %s given twice", u.ID)
		}
		seen[u.ID] = true
	}
	again := first
	again.Username, again.Disabled = "someone.else", false
	if err := f.st.CreateUser(ctx, again); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the store took a second user under a disabled user's id: %v", err)
	}
	if got, _ := f.users.User(ctx, first.ID); got.Username != "ada" || !got.Disabled {
		t.Fatalf("the first user changed: %+v", got)
	}
}

func randomSuffix(t *testing.T) string {
	id, err := randomID()
	if err != nil {
		t.Fatal(err)
	}
	return id[:10]
}

// TestSigningConfirmWithSecurityKey: a person whose second factor is a
// security key signs with the password and a fresh assertion of the key,
// issued with the nonce; the signer's methods name the key. Refused, and
// counted towards the signing throttle: no password, an assertion of
// another person's key, one answering the challenge of another nonce, a
// sealed state of another nonce, a replayed assertion (with its nonce or
// with a new one), a key whose counter went back (flagged, then no longer
// offered), and an assertion for a person without a key.
func TestSigningConfirmWithSecurityKey(t *testing.T) {
	f := newWAFixture(t, waOrigin)
	ctx := context.Background()
	const password = "correct horse battery staple"
	const target, meaning = "Observation/o1/_history/1", "1.2.840.10065.1.12.1.5"
	key := newSoftKey(t)
	if m, _ := f.register(t, key); m != AMRHardwareKey {
		t.Fatalf("registered %q", m)
	}
	if _, err := f.users.SetSigning(ctx, f.user.ID, true, "Ada Lovelace"); err != nil {
		t.Fatal(err)
	}
	sg, err := NewSigning(SigningConfig{Now: f.clock.Now}, f.users, f.st)
	if err != nil {
		t.Fatal(err)
	}
	challenge := func(userID string) Challenge {
		t.Helper()
		ch, err := sg.Challenge(ctx, userID, target, meaning)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	assertion := func(k *softKey, ch Challenge, userID string) []byte {
		t.Helper()
		k.counter++
		return k.get(ch.KeyOptions, userID)
	}
	confirm := func(ch Challenge, userID, pw string, resp, state []byte) (Signer, error) {
		return sg.Confirm(ctx, Confirmation{UserID: userID, Source: "192.0.2.1", Target: target, Meaning: meaning,
			Nonce: ch.Nonce, Password: pw, Assertion: resp, KeyState: state})
	}
	try := func(ch Challenge, userID, pw string, resp, state []byte) error {
		_, err := confirm(ch, userID, pw, resp, state)
		return err
	}
	failures := func() int {
		t.Helper()
		a, err := f.st.ClientAttempts(ctx, attemptKeyOf("user", f.user.ID))
		if err != nil {
			t.Fatal(err)
		}
		return a.Failures
	}
	refused := func(what, reason string, err error) {
		t.Helper()
		var ce *CeremonyError
		if !errors.As(err, &ce) || ce.Reason != reason {
			t.Fatalf("%s: %v, want a ceremony failure %q", what, err, reason)
		}
		f.clock.Add(time.Hour) // past any throttle: each case is checked on its own
	}

	ch := challenge(f.user.ID)
	if len(ch.KeyOptions) == 0 || len(ch.KeyState) == 0 {
		t.Fatal("no security key challenge for a person with a key")
	}
	if bytes.Contains(ch.KeyState, []byte(target)) || bytes.Contains(ch.KeyState, []byte(f.user.ID)) {
		t.Fatal("the key state is not sealed")
	}
	refused("no password", "wrong-password", try(ch, f.user.ID, "", assertion(key, ch, f.user.ID), ch.KeyState))
	if n := failures(); n != 1 {
		t.Fatalf("a refusal counted %d failures", n)
	}

	// Another person's key, answering this person's challenge.
	bob, err := f.users.Create(ctx, NewUser{Username: "bob", Role: policy.RoleAdmin, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	bobKey := newSoftKey(t)
	opts, state, err := f.users.BeginWebAuthnRegistration(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.users.FinishWebAuthnRegistration(ctx, bob.ID, state, bobKey.create(opts)); err != nil {
		t.Fatal(err)
	}
	ch = challenge(f.user.ID)
	refused("another person's key", "wrong-key", try(ch, f.user.ID, password, assertion(bobKey, ch, bob.ID), ch.KeyState))
	ch = challenge(f.user.ID)
	refused("another person's key as this person's", "wrong-key", try(ch, f.user.ID, password, assertion(bobKey, ch, f.user.ID), ch.KeyState))

	// The challenge or the state of another nonce.
	a, b := challenge(f.user.ID), challenge(f.user.ID)
	refused("an assertion of another nonce's challenge", "wrong-key", try(b, f.user.ID, password, assertion(key, a, f.user.ID), b.KeyState))
	a, b = challenge(f.user.ID), challenge(f.user.ID)
	refused("the state of another nonce", "wrong-key", try(b, f.user.ID, password, assertion(key, a, f.user.ID), a.KeyState))
	a = challenge(f.user.ID)
	refused("no state", "wrong-key", try(a, f.user.ID, password, assertion(key, a, f.user.ID), nil))
	bobCh := challenge(bob.ID)
	refused("a state of another person's", "wrong-key", try(challenge(f.user.ID), f.user.ID, password, assertion(key, bobCh, f.user.ID), bobCh.KeyState))

	// Signed with the password and the key.
	ch = challenge(f.user.ID)
	resp := assertion(key, ch, f.user.ID)
	got, err := confirm(ch, f.user.ID, password, resp, ch.KeyState)
	if err != nil {
		t.Fatalf("password and key: %v", err)
	}
	if got.UserID != f.user.ID || !got.Right || len(got.Methods) != 2 || got.Methods[0] != "pwd" || got.Methods[1] != AMRHardwareKey {
		t.Fatalf("signer %+v", got)
	}
	if n := failures(); n != 0 {
		t.Fatalf("a signing left %d failures", n)
	}
	refused("a replayed ceremony", "nonce", try(ch, f.user.ID, password, resp, ch.KeyState))
	again := challenge(f.user.ID)
	refused("a replayed assertion with a new nonce", "wrong-key", try(again, f.user.ID, password, resp, again.KeyState))

	// A key whose counter went back is refused and flagged: it is not
	// offered again.
	key.counter = 0
	ch = challenge(f.user.ID)
	refused("a key whose counter went back", "cloned-key", try(ch, f.user.ID, password, assertion(key, ch, f.user.ID), ch.KeyState))
	if ch = challenge(f.user.ID); ch.KeyOptions != nil || ch.KeyState != nil {
		t.Fatal("a cloned key is offered for signing")
	}

	// A person without a key is offered none, and an assertion does not
	// stand in for their missing second factor.
	carol, err := f.users.Create(ctx, NewUser{Username: "carol", Role: policy.RoleAdmin, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	cc := challenge(carol.ID)
	if cc.KeyOptions != nil || cc.KeyState != nil {
		t.Fatal("a key challenge for a person without a key")
	}
	refused("an assertion for a person without a key", "wrong-key", try(cc, carol.ID, password, assertion(key, again, f.user.ID), again.KeyState))
}
