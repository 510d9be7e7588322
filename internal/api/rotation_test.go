package api_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
)

// fileTokenKeys is a replica's token key source: the key file's token
// generations, re-read when another process rotated them (cmd/ward wires
// the same, and the HSM's keys too).
func fileTokenKeys(kf *keys.LocalFile) auth.KeySource {
	return func() (crypto.Signer, []ed25519.PublicKey, error) {
		if err := kf.Refresh(); err != nil {
			return nil, nil, err
		}
		gens := kf.TokenKeys(time.Now(), auth.MaxTokenTTL+2*time.Minute)
		cur := gens[len(gens)-1]
		var prev []ed25519.PublicKey
		for _, g := range gens[:len(gens)-1] {
			prev = append(prev, g.Public)
		}
		return kf.Signer(keys.KindToken, cur.ID), prev, nil
	}
}

// TestTokenKeyRotationUnderLoad is catalogue J2 for the token signing
// key: two replicas share a database and a key file; while requests run
// through both with tokens of the old key and fresh ones, the key is
// rotated by a third process (ward keys rotate --kind token). Replica a
// picks the rotation up at once, replica b a moment later (as their key
// watchers do, at different times). No request fails; afterwards tokens
// of the old key still work on both until they expire, both sign with
// the new key, and the JWKS lists both keys. (Each test replica has its
// own issuer URL, so tokens do not cross between them here; a token
// under a key a replica has not seen yet is TestTokenKeyRotation's.)
func TestTokenKeyRotationUnderLoad(t *testing.T) {
	schema := newPGSchema(t)
	open := func(t *testing.T, _ string) store.Store { return schema.open(t) }
	a := newStackWith(t, stackOptions{openStore: open})
	keyPath := filepath.Join(a.dir, "keys.json")
	b := newStackWith(t, stackOptions{openStore: open, keyFile: keyPath})
	for _, s := range []*stack{a, b} {
		s.auth.WithKeySource(fileTokenKeys(s.keyFile))
	}
	id := idFrom(t, must(t, a.do("POST", "/fhir/Patient", patient("Rotation", "Load")), http.StatusCreated))
	oldKid := a.auth.KeyID()
	oldTokens := []string{a.newToken("system/*.rs"), b.newToken("system/*.rs")}

	var failed atomic.Int64
	var served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (w + i) % 2
				s, tok := []*stack{a, b}[k], oldTokens[k]
				if w%3 == 2 {
					// A fresh token, signed by the key the replica
					// holds at that moment.
					tok = s.newToken("system/*.rs")
				}
				r := s.do("GET", "/fhir/Patient/"+id, nil, "Authorization", "Bearer "+tok)
				served.Add(1)
				if r.status != http.StatusOK {
					failed.Add(1)
					t.Errorf("request %d of worker %d: status %d %.200s", i, w, r.status, r.body)
				}
			}
		}()
	}
	waitServed := func(n int64) {
		deadline := time.Now().Add(30 * time.Second)
		for target := served.Load() + n; served.Load() < target; {
			if time.Now().After(deadline) {
				t.Fatal("the load stopped making progress")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitServed(30)
	cli, err := keys.OpenLocalFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cli.RotateSigning(context.Background(), keys.KindToken, keys.SigningKey{}, auth.MaxTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	waitServed(30)
	// Replica a's watcher runs: it signs with the new key from now on.
	key, prev, err := fileTokenKeys(a.keyFile)()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.auth.SetKeys(key, prev...); err != nil {
		t.Fatal(err)
	}
	waitServed(60)
	key, prev, err = fileTokenKeys(b.keyFile)()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.auth.SetKeys(key, prev...); err != nil {
		t.Fatal(err)
	}
	waitServed(60)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed across the rotation", n, served.Load())
	}
	newKid := a.auth.KeyID()
	if newKid == oldKid || b.auth.KeyID() != newKid {
		t.Fatalf("after the rotation (%s) kids a=%s b=%s, old %s: b did not pick up the key another replica signs with",
			g.ID, newKid, b.auth.KeyID(), oldKid)
	}
	for k, s := range []*stack{a, b} {
		must(t, s.do("GET", "/fhir/Patient/"+id, nil, "Authorization", "Bearer "+oldTokens[k]), http.StatusOK)
	}
	jwks := must(t, b.do("GET", "/oauth2/jwks", nil), http.StatusOK).body
	for _, kid := range []string{oldKid, newKid} {
		if !strings.Contains(string(jwks), kid) {
			t.Errorf("JWKS lacks %s: %s", kid, jwks)
		}
	}
	t.Logf("%d requests across the rotation, none failed", served.Load())
}
