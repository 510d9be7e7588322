package auth

import (
	"context"
	"errors"
	"testing"

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
