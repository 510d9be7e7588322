//go:build pkcs11

package api_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/keys/pkcs11/pkcs11test"
)

// TestHSMUnavailable is catalogue case D4 with a real HSM (SoftHSM2)
// behind the API: while the HSM is away, a read whose data key is not
// cached and a create both answer 503 with no PHI; once it returns, the
// same server answers 200 and 201 again, without a restart.
func TestHSMUnavailable(t *testing.T) {
	tok := pkcs11test.NewToken(t)
	s := newStackWith(t, stackOptions{kek: func(t *testing.T, kf *keys.LocalFile) keys.KEKProvider {
		ctx := context.Background()
		hsm, err := pkcs11.Open(ctx, pkcs11.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: []byte(tok.PIN)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hsm.Close() })
		if _, err := hsm.CreateKEK(ctx, pkcs11.DefaultKEKLabel); err != nil {
			t.Fatal(err)
		}
		m, err := keys.Moving(hsm, kf)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}})
	pid := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	must(t, s.do("GET", "/fhir/Patient/"+pid, nil), http.StatusOK)

	// The HSM goes away: its module is finalised and its token is gone.
	lib := p11.New(tok.Module)
	if lib == nil {
		t.Fatal("loading the module")
	}
	defer lib.Destroy()
	lib.Finalize()
	bringBack := tok.TakeAway(t)
	s.keyring.Evict(pid)

	for _, r := range []response{
		s.do("GET", "/fhir/Patient/"+pid, nil),
		s.do("POST", "/fhir/Patient", canaryPatient()),
	} {
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("with the HSM away: status %d, want 503: %s", r.status, r.body)
		}
		for _, phi := range []string{"Quxbrightwater", "Zelphine", "MRN-CANARY-88123", "1931-07-19"} {
			if bytes.Contains(r.body, []byte(phi)) {
				t.Fatalf("503 body carries %q", phi)
			}
		}
	}

	bringBack()
	r := must(t, s.do("GET", "/fhir/Patient/"+pid, nil), http.StatusOK)
	if !bytes.Contains(r.body, []byte("Quxbrightwater")) {
		t.Fatalf("the record read after the HSM returned is not the one written: %s", r.body)
	}
	must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated)
}
