package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/browsertest"
	"github.com/wardhealth/ward/internal/policy"
)

// TestSignInBrowser is the sign-in end to end in a real headless Chromium:
// an auditor (a role that needs MFA) opens an app's authorization link,
// signs in with a password, is made to enrol an authenticator (the QR page),
// confirms with a TOTP code, sees the recovery codes and the app's scopes
// in plain words, allows, and the app receives its code, which it exchanges
// for a token that records the second factor (acr, amr).
func TestSignInBrowser(t *testing.T) {
	b := browsertest.Start(t)
	s := newStack(t)
	if _, err := s.users.Create(context.Background(), auth.NewUser{Username: "audrey", Role: policy.RoleAuditor, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	a := s.newApp(true, "openid", "fhirUser", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	rp.conf.ClientSecret = ""

	b.Go(rp.authURL("br1"))
	b.Find("#username").Type("audrey")
	b.Find("#password").Type(testPassword)
	b.Find("#submit").Click()

	secret := b.Find("#secret").Text() // the enrolment page, with its QR code
	if src := b.Find("#qr").Attr("src"); !strings.HasPrefix(src, "data:image/png;base64,") {
		t.Fatalf("enrolment page has no QR image: %.40q", src)
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.Find("#code").Type(code)
	b.Find("#submit").Click()

	if n := len(b.Find("#codes").Text()); n < 50 {
		t.Fatalf("recovery codes page shows %d characters", n)
	}
	b.Find("#submit").Click()
	scopes := b.Find("#scopes").Text()
	if !strings.Contains(scopes, "Read and search all of the patient's records") {
		t.Fatalf("authorisation page scopes: %q", scopes)
	}
	b.Find("#allow").Click()

	landed := b.WaitURL(a.cb.URL+"/cb", 15*time.Second)
	u, err := url.Parse(landed)
	if err != nil || u.Query().Get("state") != "br1" || u.Query().Get("code") == "" {
		t.Fatalf("app redirect %q", landed)
	}
	tok, err := rp.conf.Exchange(rp.ctx, u.Query().Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["acr"] != "urn:ward:acr:mfa" || !slices.Contains(claims["amr"].([]any), any("otp")) || claims["ward_mfa_time"] == nil {
		t.Fatalf("access token does not record the second factor: acr %v amr %v", claims["acr"], claims["amr"])
	}
	for _, c := range b.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || !c.HTTPOnly || c.SameSite == "None") {
			t.Errorf("cookie %s: secure %v httponly %v samesite %q", c.Name, c.Secure, c.HTTPOnly, c.SameSite)
		}
	}
}

// jwtClaims decodes a JWT's payload without verifying it (the server
// verified it; the test only reads claims).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
