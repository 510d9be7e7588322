package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/store"
)

const userSummary = `Manages the people who sign in to Ward.

  create        --username U --role R [--fhir-user Practitioner/123] [--password-stdin]
  list
  disable       --id ID      (ends sessions; tokens stop working)
  enable        --id ID
  set-password  --id ID [--password-stdin]   (ends sessions; tokens stop working)
  reset-mfa     --id ID      (removes the second factor; the person enrols again)
  signing grant  --id ID --name "Printed Name"   (the right to sign records electronically,
                 once the person's identity is verified; the name is shown with every signature)
  signing revoke --id ID     (withdraws the right; past signatures stay valid and keep their name)

Roles: patient, practitioner, admin, auditor (admin and auditor always sign in
with a second factor). Without --password-stdin a random password is generated
and shown once. Passwords are 12 to 128 characters and must not be on the
bundled list of breached passwords. There is no default account.`

func runUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runUserWith(ctx, args, os.Stdin, stdout, stderr)
}

func runUserWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "user", "create", "list", "disable", "enable", "set-password", "reset-mfa", "signing")
	if err != nil {
		return err
	}
	var signing string
	if sub == "signing" {
		if len(rest) == 0 || rest[0] != "grant" && rest[0] != "revoke" {
			return usagef("usage: ward user signing <grant|revoke> --id ID [--name \"Printed Name\"]")
		}
		signing, rest = rest[0], rest[1:]
	}
	var st storage
	fs := newFlagSet("user "+sub, userSummary)
	st.register(fs)
	username := fs.String("username", "", "create: the sign-in name (a-z 0-9 . _ @ -; case-insensitive)")
	role := fs.String("role", "", "create: patient, practitioner, admin, auditor or a configured role")
	fhirUser := fs.String("fhir-user", "", "create: the person's FHIR record, e.g. Practitioner/123 or Patient/abc")
	id := fs.String("id", "", "the user id")
	name := fs.String("name", "", "signing grant: the person's printed name, shown with each of their signatures")
	fromStdin := fs.Bool("password-stdin", false, "create, set-password: read the password from the first line of standard input")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	switch {
	case sub == "create" && (*username == "" || *role == ""):
		return usagef("--username and --role are required")
	case sub != "create" && sub != "list" && *id == "":
		return usagef("--id is required")
	}
	password := ""
	generated := false
	if sub == "create" || sub == "set-password" {
		if *fromStdin {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read password: %w", err)
			}
			password = strings.TrimRight(line, "\r\n")
		} else {
			if password, err = generatePassword(); err != nil {
				return err
			}
			generated = true
		}
	}
	users, db, err := openUsers(ctx, &st)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "create":
		u, err := users.Create(ctx, auth.NewUser{Username: *username, Role: *role, FHIRUser: *fhirUser, Password: password})
		if err != nil {
			return err
		}
		if err := recordAdmin(ctx, db, "user-create", "User", u.ID, "role="+u.Role); err != nil {
			return err
		}
		changeEvent(&st, stderr, secevent.AccountChanged, u.ID, "created", u.Role)
		fmt.Fprintf(stdout, "id:        %s\nusername:  %s\nrole:      %s\n", u.ID, u.Username, u.Role)
		if u.FHIRUser != "" {
			fmt.Fprintf(stdout, "fhir_user: %s\n", u.FHIRUser)
		}
		if generated {
			fmt.Fprintf(stdout, "password:  %s\n\nThe password is shown only now; Ward stores only its argon2id hash.\n", password)
		}
		if users.MFARequired(u) {
			fmt.Fprintln(stdout, "This role needs a second factor: the person sets up an authenticator app at first sign-in.")
		}
	case "list":
		all, err := users.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tFHIR USER\tMFA\tSTATUS\tCREATED\tSIGNS")
		for _, u := range all {
			status, mfa := "active", "no"
			if u.Disabled {
				status = "disabled"
			}
			if auth.HasMFA(u) {
				mfa = "totp"
			}
			signs := "no"
			if u.Signing {
				signs = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Role, u.FHIRUser, mfa, status, u.Created.UTC().Format(time.RFC3339), signs)
		}
		return tw.Flush()
	case "disable", "enable":
		if err := users.SetDisabled(ctx, *id, sub == "disable"); err != nil {
			return userErr(err, *id)
		}
		if err := recordAdmin(ctx, db, "user-"+sub, "User", *id, ""); err != nil {
			return err
		}
		changeEvent(&st, stderr, secevent.AccountChanged, *id, sub+"d", "")
		fmt.Fprintf(stdout, "%sd %s\n", sub, *id)
	case "set-password":
		if err := users.SetPassword(ctx, *id, password); err != nil {
			return userErr(err, *id)
		}
		if err := recordAdmin(ctx, db, "user-set-password", "User", *id, ""); err != nil {
			return err
		}
		changeEvent(&st, stderr, secevent.AccountChanged, *id, "password", "")
		fmt.Fprintf(stdout, "password changed for %s; its sessions ended and its tokens stop working\n", *id)
		if generated {
			fmt.Fprintf(stdout, "password: %s\n", password)
		}
	case "signing":
		u, err := users.SetSigning(ctx, *id, signing == "grant", *name)
		if err != nil {
			return userErr(err, *id)
		}
		if err := recordAdmin(ctx, db, "user-signing-"+signing, "User", *id, ""); err != nil {
			return err
		}
		change := map[string]string{"grant": "granted", "revoke": "withdrawn"}[signing]
		changeEvent(&st, stderr, secevent.SigningRight, *id, change, "")
		fmt.Fprintf(stdout, "right to sign %s for %s (%s)\n", change, u.ID, u.DisplayName)
	case "reset-mfa":
		if err := users.RemoveMFA(ctx, *id); err != nil {
			return userErr(err, *id)
		}
		if err := recordAdmin(ctx, db, "user-reset-mfa", "User", *id, ""); err != nil {
			return err
		}
		changeEvent(&st, stderr, secevent.AccountChanged, *id, "mfa-removed", "")
		fmt.Fprintf(stdout, "second factor removed for %s; sessions ended\n", *id)
	}
	return nil
}

func userErr(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user with id %q", id)
	}
	return err
}

func openUsers(ctx context.Context, st *storage) (*auth.Users, store.Store, error) {
	kf, err := st.openKeys()
	if err != nil {
		return nil, nil, err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	// The HSM, if any, stays open until the command exits.
	kr, _, _, err := st.hsm.keyring(ctx, kf, db)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	users, err := auth.NewUsers(auth.UsersConfig{}, db, kr)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return users, db, nil
}

// generatePassword returns 24 random characters from a 54-letter
// unambiguous alphabet, in groups of six (about 138 bits).
func generatePassword() (string, error) {
	const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"
	var b strings.Builder
	for i := range 24 {
		if i > 0 && i%6 == 0 {
			b.WriteByte('-')
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	return b.String(), nil
}
