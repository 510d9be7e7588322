package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/secevent"
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
		_ = db.Close()
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
	scopes := fs.String("scope", "", "create: space-separated SMART scopes; a service defaults to 'system/*.rs', an app to 'openid fhirUser patient/*.rs'. A wildcard does not cover audit data: name 'system/AuditEvent.rs' (an app: 'user/AuditEvent.rs') to read AuditEvent and the ledger")
	var redirects listFlag
	fs.Var(&redirects, "redirect-uri", "create an app: a redirect URI, matched exactly (https, or http on loopback); repeat for more")
	public := fs.Bool("public", false, "create an app without a secret (browser or native app; PKCE protects its codes)")
	jwksFile := fs.String("jwks", "", "create a service that authenticates with signed JWT assertions (private_key_jwt, SMART Backend Services): a file with its public JWK Set")
	certFile := fs.String("tls-cert", "", "create a service that authenticates with its TLS client certificate (self_signed_tls_client_auth): a PEM file with its certificate(s)")
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
	case (*jwksFile != "" || *certFile != "") && len(redirects) > 0:
		return usagef("--jwks and --tls-cert register services; apps (--redirect-uri) use a secret or PKCE")
	case *jwksFile != "" && *certFile != "":
		return usagef("a service authenticates with --jwks or --tls-cert, not both")
	}
	spec, err := serviceKeys(*jwksFile, *certFile)
	if err != nil {
		return err
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
		changeEvent(&st, stderr, secevent.ClientChanged, c.ID, "created", "")
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
		spec.Name, spec.Scopes = *name, strings.Fields(cmp.Or(*scopes, "system/*.rs"))
		c, secret, err := au.CreateService(ctx, spec)
		if err != nil {
			return err
		}
		method := "client_secret_basic client_secret_post"
		switch {
		case c.JWKS != nil:
			method = "private_key_jwt"
		case len(c.CertThumbprints) > 0:
			method = "self_signed_tls_client_auth"
		}
		if err := recordAdmin(ctx, db, "client-create", "Client", c.ID, "service scope="+strings.Join(c.Scopes, " ")+" auth="+strings.Fields(method)[0]); err != nil {
			return err
		}
		changeEvent(&st, stderr, secevent.ClientChanged, c.ID, "created", "")
		fmt.Fprintf(stdout, "client_id:     %s\n", c.ID)
		if secret.Reveal() != "" {
			fmt.Fprintf(stdout, "client_secret: %s\n", secret.Reveal())
		}
		fmt.Fprintf(stdout, "scope:         %s\nauth:          %s\n", strings.Join(c.Scopes, " "), method)
		for _, tp := range c.CertThumbprints {
			fmt.Fprintf(stdout, "cert_sha256:   %s\n", tp)
		}
		switch method {
		case "client_secret_basic client_secret_post":
			fmt.Fprintln(stdout, "\nThe secret is shown only now; Ward stores only its hash.")
		case "private_key_jwt":
			fmt.Fprintln(stdout, "\nSign each client_assertion with one of the registered keys (kid in the header),\n"+
				"iss and sub the client_id, aud the token endpoint URL, exp within 5 minutes, a new jti.")
		default:
			fmt.Fprintln(stdout, "\nPresent the certificate in the TLS handshake and send client_id in the token\n"+
				"request; the server must run with --mtls (or --client-ca).")
		}
	case sub == "list":
		clients, err := au.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKIND\tCREATED\tSTATUS\tSCOPE\tREDIRECT URIS")
		for _, c := range clients {
			status := "active"
			switch {
			case c.Revoked:
				status = "revoked"
			case c.Suspended:
				status = "suspended"
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
		changeEvent(&st, stderr, secevent.ClientChanged, *id, "revoked", "")
		fmt.Fprintf(stdout, "revoked %s; its tokens stop working within seconds\n", *id)
	}
	return nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "keys", "init", "rotate", "add-esign")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("keys "+sub, "init creates the key file (mode 0600; sealed when a passphrase is given); with --key-provider pkcs11\n"+
		"it also creates (or checks) the key-encryption key and a token signing key in the HSM.\n"+
		"rotate adds a new key-encryption key, rewraps every data key under it while servers run, and retires the old one;\n"+
		"with --key-provider pkcs11 the new key is the HSM's (--pkcs11-kek): this is how Ward moves from the key file to an HSM.\n"+
		"add-esign gives a key file made before electronic signatures its e-signature key (ward serve also does at start).")
	st.register(fs)
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if sub == "init" {
		if _, err := os.Stat(st.keyFile()); !st.hsm.usesHSM() || errors.Is(err, os.ErrNotExist) {
			if err := st.createKeys(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created %s\n", st.keyFile())
		}
		if st.hsm.usesHSM() {
			return st.hsm.initHSM(ctx, stdout)
		}
		return nil
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	if sub == "add-esign" {
		return addESignKey(ctx, stdout, &st, kf)
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if st.hsm.usesHSM() {
		return rotateToHSM(ctx, &st, kf, db, stdout)
	}
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

// maxKeyFile bounds the --jwks and --tls-cert files.
const maxKeyFile = 64 << 10

// serviceKeys reads what a service authenticates with: a JWK Set file, or
// a PEM file of certificates, or neither (a secret).
func serviceKeys(jwksFile, certFile string) (auth.ServiceSpec, error) {
	var spec auth.ServiceSpec
	read := func(path string) ([]byte, error) {
		f, err := os.Open(path) // #nosec G304 G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
		if err == nil && len(b) > maxKeyFile {
			err = fmt.Errorf("%s is larger than %d bytes", path, maxKeyFile)
		}
		return b, err
	}
	switch {
	case jwksFile != "":
		b, err := read(jwksFile)
		if err != nil {
			return spec, fmt.Errorf("--jwks: %w", err)
		}
		spec.JWKS = b
	case certFile != "":
		b, err := read(certFile)
		if err != nil {
			return spec, fmt.Errorf("--tls-cert: %w", err)
		}
		for {
			var block *pem.Block
			block, b = pem.Decode(b)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				return spec, fmt.Errorf("--tls-cert: %s holds a %s; give certificates only, never a private key", certFile, block.Type)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return spec, fmt.Errorf("--tls-cert: %w", err)
			}
			spec.Certs = append(spec.Certs, cert)
		}
		if len(spec.Certs) == 0 {
			return spec, fmt.Errorf("--tls-cert: %s holds no PEM certificate", certFile)
		}
	}
	return spec, nil
}

// rotateToHSM makes the HSM's KEK (--pkcs11-kek, created when missing)
// the current one and rewraps every data key under it while servers run:
// from the key file, or from an earlier KEK in the HSM. The key file's
// KEKs that no data key uses any more are retired, except its current one,
// which the file format keeps and which then wraps nothing. Earlier KEKs in
// the HSM are listed for the operator to destroy with the HSM's tools once
// no data key uses them.
func rotateToHSM(ctx context.Context, st *storage, kf *keys.LocalFile, db store.Store, stdout io.Writer) error {
	hsm, err := st.hsm.open(ctx)
	if err != nil {
		return err
	}
	_, err = hsm.CreateKEK(ctx, st.hsm.kekLabel)
	_ = hsm.Close()
	if err != nil {
		return err
	}
	kr, _, release, err := st.hsm.keyring(ctx, kf, db)
	if err != nil {
		return err
	}
	defer release()
	newKEK := pkcs11.KEKPrefix + st.hsm.kekLabel
	n := 0
	// Two passes, as for the key file: a server may wrap a new data key
	// under the old KEK while the first pass lists keys.
	for range 2 {
		m, err := kr.Rewrap(ctx)
		n += m
		if err != nil {
			return fmt.Errorf("rewrap (the HSM's key %s is current; run rotate again to finish): %w", newKEK, err)
		}
	}
	inUse, err := kr.KEKsInUse(ctx)
	if err != nil {
		return err
	}
	retired, err := kf.Retire(ctx, func(id string) bool { return inUse[id] })
	if err != nil {
		return err
	}
	var older []string
	for id := range inUse {
		if id != newKEK {
			older = append(older, id)
		}
	}
	slices.Sort(older)
	if err := recordAdmin(ctx, db, "keys-rotate", "KEK", newKEK, fmt.Sprintf("rewrapped=%d retired=%s", n, strings.Join(retired, ","))); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "current key-encryption key: %s\nrewrapped data keys: %d\nretired from the key file: %s\n", newKEK, n, strings.Join(retired, ", "))
	if len(older) > 0 {
		fmt.Fprintf(stdout, "still in use (run rotate again): %s\n", strings.Join(older, ", "))
	}
	return nil
}

// addESignKey adds the e-signature key to a key file that has none, and
// records it in the ledger.
func addESignKey(ctx context.Context, out io.Writer, st *storage, kf *keys.LocalFile) error {
	added, err := kf.AddESignKey(ctx)
	if err != nil {
		return err
	}
	if !added {
		fmt.Fprintln(out, "the key file has an e-signature key already")
		return nil
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := recordAdmin(ctx, db, "keys-add-esign", "", "", ""); err != nil {
		return err
	}
	fmt.Fprintln(out, "added an e-signature key to", st.keyFile())
	return nil
}
