package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// subcommand picks a command's subcommand. Asked for help, it prints the
// usage on out.
func subcommand(out io.Writer, args []string, name string, subs ...string) (string, []string, error) {
	usage := fmt.Sprintf("usage: ward %s <%s> [flags]", name, strings.Join(subs, "|"))
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintf(out, "%s\nRun 'ward %s <%s> --help' for a subcommand's flags.\n", usage, name, strings.Join(subs, "|"))
		return "", nil, errHelp
	}
	if len(args) == 0 {
		return "", nil, usageError{usage}
	}
	for _, s := range subs {
		if args[0] == s {
			return s, args[1:], nil
		}
	}
	return "", nil, usagef("unknown subcommand %q; want one of %s", args[0], strings.Join(subs, ", "))
}

// openAuth opens the store and an auth server over it, for client commands.
func openAuth(ctx context.Context, st *storage) (*auth.Server, store.Store, error) {
	kf, err := st.openKeys()
	if err != nil {
		return nil, nil, err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	au, err := auth.NewServer(auth.Config{Issuer: "https://ward.invalid", Audience: "https://ward.invalid/fhir"}, db, kf.TokenSigner())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return au, db, nil
}

func runClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "client", "create", "list", "revoke")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("client "+sub, "Manages OAuth2 clients: services (client credentials grant) and, with --redirect-uri, apps that sign people in.")
	st.register(fs)
	name := fs.String("name", "", "create: a human-readable name")
	scopes := fs.String("scope", "", "create: space-separated SMART scopes; a service defaults to 'system/*.rs', an app to 'openid fhirUser patient/*.rs'")
	var redirects listFlag
	fs.Var(&redirects, "redirect-uri", "create an app: a redirect URI, matched exactly (https, or http on loopback); repeat for more")
	public := fs.Bool("public", false, "create an app without a secret (browser or native app; PKCE protects its codes)")
	id := fs.String("id", "", "revoke: the client id")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	// Usage errors come before anything is opened or created.
	switch {
	case sub == "create" && *name == "":
		return usagef("--name is required")
	case sub == "revoke" && *id == "":
		return usagef("--id is required")
	}
	au, db, err := openAuth(ctx, &st)
	if err != nil {
		return err
	}
	defer db.Close()
	switch {
	case sub == "create" && len(redirects) > 0:
		sc := cmp.Or(*scopes, "openid fhirUser patient/*.rs")
		c, secret, err := au.CreateApp(ctx, auth.AppSpec{Name: *name, Scopes: strings.Fields(sc), RedirectURIs: redirects, Public: *public})
		if err != nil {
			return err
		}
		if err := recordAdmin(ctx, db, "client-create", "Client", c.ID, "app scope="+strings.Join(c.Scopes, " ")); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client_id:     %s\n", c.ID)
		if secret.Reveal() != "" {
			fmt.Fprintf(stdout, "client_secret: %s\n", secret.Reveal())
		}
		fmt.Fprintf(stdout, "scope:         %s\nredirect_uri:  %s\n", strings.Join(c.Scopes, " "), strings.Join(c.RedirectURIs, " "))
		if secret.Reveal() != "" {
			fmt.Fprintln(stdout, "\nThe secret is shown only now; Ward stores only its hash.")
		}
	case sub == "create":
		if *public {
			return usagef("--public needs --redirect-uri: only apps are public")
		}
		c, secret, err := au.CreateClient(ctx, *name, strings.Fields(cmp.Or(*scopes, "system/*.rs")))
		if err != nil {
			return err
		}
		if err := recordAdmin(ctx, db, "client-create", "Client", c.ID, "service scope="+strings.Join(c.Scopes, " ")); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client_id:     %s\nclient_secret: %s\nscope:         %s\n\nThe secret is shown only now; Ward stores only its hash.\n",
			c.ID, secret.Reveal(), strings.Join(c.Scopes, " "))
	case sub == "list":
		clients, err := au.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKIND\tCREATED\tSTATUS\tSCOPE\tREDIRECT URIS")
		for _, c := range clients {
			status := "active"
			if c.Revoked {
				status = "revoked"
			}
			kind := "service"
			if len(c.RedirectURIs) > 0 {
				kind = "app"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, kind, c.Created.UTC().Format(time.RFC3339), status, strings.Join(c.Scopes, " "), strings.Join(c.RedirectURIs, " "))
		}
		return tw.Flush()
	case sub == "revoke":
		if err := au.RevokeClient(ctx, *id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no client with id %q", *id)
			}
			return err
		}
		if err := recordAdmin(ctx, db, "client-revoke", "Client", *id, ""); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s; its tokens stop working within seconds\n", *id)
	}
	return nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "keys", "init", "rotate")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("keys "+sub, "init creates the key file (mode 0600; sealed when a passphrase is given).\n"+
		"rotate adds a new key-encryption key, rewraps every data key under it while servers run, and retires the old one.")
	st.register(fs)
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if sub == "init" {
		if err := st.createKeys(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s\n", st.keyFile())
		return nil
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	kr, err := keys.NewKeyring(kf, records.KeyStore(db), keys.Config{Rand: rand.Reader})
	if err != nil {
		return err
	}
	newKEK, err := kf.Rotate(ctx)
	if err != nil {
		return err
	}
	n, err := kr.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("rewrap (the new key %s is current; run rotate again to finish): %w", newKEK, err)
	}
	// A server may have wrapped a new data key under the old KEK while the
	// first pass listed keys; a second pass catches it before retiring.
	n2, err := kr.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("rewrap (the new key %s is current; run rotate again to finish): %w", newKEK, err)
	}
	n += n2
	inUse, err := kr.KEKsInUse(ctx)
	if err != nil {
		return err
	}
	retired, err := kf.Retire(ctx, func(id string) bool { return inUse[id] })
	if err != nil {
		return err
	}
	if err := recordAdmin(ctx, db, "keys-rotate", "KEK", newKEK, fmt.Sprintf("rewrapped=%d retired=%s", n, strings.Join(retired, ","))); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "current key-encryption key: %s\nrewrapped data keys: %d\nretired: %s\n", newKEK, n, strings.Join(retired, ", "))
	return nil
}
