package auth

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// BenchmarkToken measures a client credentials token request by each
// authentication method over the in-memory store; "secret" is the
// baseline the others are judged against. Signing the token is included
// in every case.
func BenchmarkToken(b *testing.B) {
	f := newAssertionFixture(b)
	ctx := context.Background()
	cert := selfSigned(b, "bench")
	svc, _, err := f.srv.CreateService(ctx, ServiceSpec{Name: "tls", Scopes: []string{"system/*.rs"}, Certs: []*x509.Certificate{cert}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("secret", func(b *testing.B) {
		req := TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal()}
		for b.Loop() {
			if _, err := f.srv.Token(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cert", func(b *testing.B) {
		req := TokenRequest{GrantType: "client_credentials", ClientID: svc.ID, ClientCert: cert}
		for b.Loop() {
			if _, err := f.srv.Token(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		kid string
		key any
	}{{jose.RS384, "rsa1", f.keys.rsa}, {jose.ES384, "ec1", f.keys.ec384}, {jose.ES256, "ec256", f.keys.ec256}, {jose.EdDSA, "ed1", f.keys.ed}} {
		b.Run(string(tc.alg), func(b *testing.B) {
			next := f.assertions(b, tc.key, tc.alg, tc.kid)
			for b.Loop() {
				if _, err := f.srv.Token(ctx, f.request(next())); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// assertions returns a source of fresh assertions for a benchmark, signed
// in batches with the timer stopped: signing is the client's cost.
func (f *assertionFixture) assertions(b *testing.B, key any, alg jose.SignatureAlgorithm, kid string) func() string {
	var batch []string
	return func() string {
		if len(batch) == 0 {
			b.StopTimer()
			for range 512 {
				batch = append(batch, sign(b, key, alg, kid, f.claims(nil), nil))
			}
			b.StartTimer()
		}
		a := batch[len(batch)-1]
		batch = batch[:len(batch)-1]
		return a
	}
}

// BenchmarkTokenAssertionSQLite is an EdDSA assertion over SQLite, where
// recording the jti is a durable write, against a secret over the same
// store.
func BenchmarkTokenAssertionSQLite(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ward.db"))
	st := storetest.Opened(b, db, err)
	f := newAssertionFixture(b)
	srv, err := NewServer(Config{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now}, st, f.key)
	if err != nil {
		b.Fatal(err)
	}
	c, _, err := srv.CreateService(context.Background(), ServiceSpec{Name: "svc", Scopes: []string{"system/*.rs"}, JWKS: f.keys.keySet(b)})
	if err != nil {
		b.Fatal(err)
	}
	secret, sec, err := srv.CreateService(context.Background(), ServiceSpec{Name: "secret", Scopes: []string{"system/*.rs"}})
	if err != nil {
		b.Fatal(err)
	}
	f.svc = c.ID
	b.Run("secret", func(b *testing.B) {
		req := TokenRequest{GrantType: "client_credentials", ClientID: secret.ID, ClientSecret: sec.Reveal()}
		for b.Loop() {
			if _, err := srv.Token(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EdDSA", func(b *testing.B) {
		next := f.assertions(b, f.keys.ed, jose.EdDSA, "ed1")
		for b.Loop() {
			if _, err := srv.Token(context.Background(), f.request(next())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyFor compares verifying a cached certificate-bound token
// with its certificate against an unbound one: the binding costs one
// SHA-256 of the certificate per request.
func BenchmarkVerifyFor(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	cert := selfSigned(b, "bench")
	bound, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal(), ClientCert: cert})
	if err != nil {
		b.Fatal(err)
	}
	for name, tc := range map[string]struct {
		token string
		peer  *x509.Certificate
	}{"unbound": {f.token, nil}, "bound": {bound.AccessToken, cert}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.srv.VerifyFor(ctx, tc.token, tc.peer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeySet compares parsing a four-key set (RSA, two EC, Ed25519)
// with finding it in the cache, which the token endpoint does instead.
func BenchmarkKeySet(b *testing.B) {
	raw := sharedKeys().keySet(b)
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseKeySet(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		var c keySetCache
		for b.Loop() {
			if _, err := c.parse(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
