package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/browsertest"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/signin"
)

// keyJS holds the scripts the test runs in the page (WebDriver execute
// script, which awaits a returned promise): making a credential for
// server-issued options, and getting an assertion for the ceremony form's
// challenge (or for given options), optionally from one named credential,
// without submitting.
const keyJS = `
function bytes(s) {
  var bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  var out = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
  return out.buffer;
}
function text(buf) {
  var b = new Uint8Array(buf), bin = "";
  for (var i = 0; i < b.length; i++) { bin += String.fromCharCode(b[i]); }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function ids(list) {
  return (list || []).map(function (d) { return { type: d.type, id: bytes(d.id) }; });
}
`

const createJS = keyJS + `
var o = JSON.parse(arguments[0]).publicKey;
var pk = Object.assign({}, o, { challenge: bytes(o.challenge), excludeCredentials: ids(o.excludeCredentials) });
pk.user = Object.assign({}, o.user, { id: bytes(o.user.id) });
return navigator.credentials.create({ publicKey: pk }).then(function (c) {
  return JSON.stringify({ id: c.id, rawId: text(c.rawId), type: c.type, clientExtensionResults: {},
    response: { clientDataJSON: text(c.response.clientDataJSON), attestationObject: text(c.response.attestationObject) } });
});
`

const getJS = keyJS + `
var f = document.querySelector("form[data-webauthn-get]");
var o = JSON.parse(arguments[1] || f.getAttribute("data-webauthn-get")).publicKey;
var pk = Object.assign({}, o, { challenge: bytes(o.challenge) });
pk.allowCredentials = ids(arguments[0] ? [{ type: "public-key", id: arguments[0] }] : o.allowCredentials);
return navigator.credentials.get({ publicKey: pk }).then(function (c) {
  var r = c.response;
  return JSON.stringify({ id: c.id, rawId: text(c.rawId), type: c.type, clientExtensionResults: {},
    response: { clientDataJSON: text(r.clientDataJSON), authenticatorData: text(r.authenticatorData),
      signature: text(r.signature), userHandle: r.userHandle ? text(r.userHandle) : undefined } });
});
`

// TestESignBrowserWebAuthn is catalogue case I1 (11.200(a)) with a security key or
// passkey in a real headless Chromium with a virtual authenticator: a
// practitioner whose only second factor is a key signs in with it, opens
// the sign page, chooses a meaning and is offered the key on the
// ceremony form. Refused, nothing signed and each in the ledger: the key
// without the password, an assertion of another person's credential, an
// assertion answering the challenge of another nonce, and, after the
// signing, the whole ceremony sent again and its assertion sent with a
// new nonce. With the password and the key (the page's own button) the
// version is signed, and the signature names the key among its methods.
func TestESignBrowserWebAuthn(t *testing.T) {
	for name, o := range map[string]stackOptions{"sqlite": {localhost: true}, "postgres": {localhost: true, openStore: postgresStore}} { // skips visibly without WARD_TEST_POSTGRES
		t.Run(name, func(t *testing.T) { eSignBrowserWebAuthn(t, o) })
	}
}

func eSignBrowserWebAuthn(t *testing.T, o stackOptions) {
	b := browsertest.Start(t)
	key := b.AddVirtualAuthenticator()
	w := newSigningWorldWith(t, o)
	s := w.s
	ctx := context.Background()
	b.Go(s.base + signin.PathSignIn) // a page of Ward's origin, for the key's scripts

	// keyPerson is a practitioner of the patient's care team with the
	// right to sign and a key (made in the browser's authenticator) as
	// their only second factor.
	keyPerson := func(username, name string) string {
		t.Helper()
		pr := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated).json(t)["id"].(string)
		must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + w.patient},
			"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}}}}), http.StatusCreated)
		u, err := s.users.Create(ctx, auth.NewUser{Username: username, Role: policy.RolePractitioner, FHIRUser: "Practitioner/" + pr, Password: testPassword})
		if err != nil {
			t.Fatal(err)
		}
		opts, state, err := s.users.BeginWebAuthnRegistration(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := b.Script(createJS, string(opts)).(string)
		if _, _, err := s.users.FinishWebAuthnRegistration(ctx, u.ID, state, []byte(resp)); err != nil {
			t.Fatalf("registering %s's key: %v", username, err)
		}
		if _, err := s.users.SetSigning(ctx, u.ID, true, name); err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	signer := keyPerson("dr.key", "Dr Kay Keyes")
	other := keyPerson("dr.otherkey", "Dr Otto Keyes")
	var otherCred string // the other person's credential id (base64url)
	for _, c := range key.Credentials() {
		if c.UserHandle == base64.RawURLEncoding.EncodeToString([]byte(other)) {
			otherCred = c.ID
		}
	}
	if otherCred == "" {
		t.Fatalf("the authenticator holds no credential of the other person: %+v", key.Credentials())
	}
	from := ledgerSize(t, s)

	// Sign in through an app with the password and the key.
	a := s.newApp(true, "openid", "user/*.cruds")
	rp := s.relyingParty(a, "openid", "user/*.cruds")
	rp.conf.ClientSecret = ""
	b.Go(rp.authURL("esign-key"))
	b.Find("#username").Type("dr.key")
	b.Find("#password").Type(testPassword)
	b.Find("#submit").Click()
	b.Find("#webauthn-key").Click()
	b.Find("#allow").Click()
	landed, err := url.Parse(b.WaitURL(a.cb.URL+"/cb", 15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	token := rp.exchange(t, landed.Query()).AccessToken

	// form opens the ceremony form (step 1 done) and types password.
	form := func(password string) {
		t.Helper()
		b.Go(s.base + w.signPagePath("1"))
		b.Find(`#meaning option[value="` + meaningApproval + `"]`).Click()
		b.Find("#submit").Click()
		if got := b.Find("#meaning-chosen").Text(); !strings.Contains(got, "Verification Signature") {
			t.Fatalf("ceremony form meaning: %q", got)
		}
		if hidden := b.Find("#webauthn-key").Property("hidden"); hidden != false {
			t.Fatalf("the ceremony form does not offer the key (hidden %v)", hidden)
		}
		b.Find("#password").Type(password)
	}
	// send posts the ceremony form with some of its fields replaced.
	send := func(fields map[string]string) {
		t.Helper()
		b.Script(`var f = document.querySelector("form[data-webauthn-get]");
for (var k in arguments[0]) { f.elements[k].value = arguments[0][k]; }
HTMLFormElement.prototype.submit.call(f);`, fields)
	}
	assertion := func(cred string) string {
		t.Helper()
		got, _ := b.Script(getJS, cred, "").(string)
		if !strings.Contains(got, "authenticatorData") {
			t.Fatalf("no assertion from the authenticator: %q", got)
		}
		return got
	}
	refused := func(what string) {
		t.Helper()
		if got := b.Find("#error").Text(); !strings.Contains(got, "nothing was signed") {
			t.Fatalf("%s: the page says %q", what, got)
		}
		if sigs := w.record(t, w.doc).Versions[0].Signatures; len(sigs) != 0 {
			t.Fatalf("%s signed: %+v", what, sigs)
		}
	}

	form("")
	b.Find("#webauthn-key").Click()
	refused("the key without the password")

	form(testPassword)
	send(map[string]string{"webauthn": assertion(otherCred)})
	refused("another person's credential")

	form(testPassword)
	earlier := assertion("") // answers this form's challenge, never sent
	form(testPassword)
	send(map[string]string{"webauthn": earlier})
	refused("an assertion for another nonce's challenge")

	// Signed with the password and the key, through the page's button.
	// What the page sends is kept (in the tab's session storage) to send
	// again after.
	form(testPassword)
	b.Script(`var submit = HTMLFormElement.prototype.submit;
HTMLFormElement.prototype.submit = function () {
  var e = this.elements;
  sessionStorage.setItem("sent", JSON.stringify({ nonce: e.nonce.value, keystate: e.keystate.value, webauthn: e.webauthn.value }));
  submit.call(this);
};`)
	before := key.Credentials()
	b.Find("#webauthn-key").Click()
	if got := b.Find("#signed").Text(); !strings.HasPrefix(got, "Signed.") {
		t.Fatalf("signatures page after signing with the key: %q", got)
	}
	sigs := w.record(t, w.doc).Versions[0].Signatures
	if len(sigs) != 1 || sigs[0].Status != esign.StatusValid || sigs[0].Signer != signer || sigs[0].Name != "Dr Kay Keyes" || sigs[0].Meaning.Code != meaningApproval {
		t.Fatalf("$signatures after signing with the key: %+v", sigs)
	}
	st, err := esign.Open(sigs[0].Data, w.keys(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Methods) != 2 || st.Methods[0] != "pwd" || (st.Methods[1] != auth.AMRHardwareKey && st.Methods[1] != auth.AMRSoftwareKey) {
		t.Fatalf("the signature's methods %v do not name the key", st.Methods)
	}
	signed := false
	for i, c := range key.Credentials() {
		signed = signed || (c.UserHandle == before[i].UserHandle && c.SignCount > before[i].SignCount)
	}
	if !signed {
		t.Error("the authenticator did not sign for the signing")
	}
	var sent map[string]string
	raw, _ := b.Script(`return sessionStorage.getItem("sent")`).(string)
	if err := json.Unmarshal([]byte(raw), &sent); err != nil || sent["nonce"] == "" || sent["keystate"] == "" || !strings.Contains(sent["webauthn"], "signature") {
		t.Fatalf("what the page sent was not kept: %q (%v)", raw, err)
	}

	form(testPassword)
	send(sent)
	refused2 := func(what string) {
		t.Helper()
		if got := b.Find("#error").Text(); !strings.Contains(got, "nothing was signed") {
			t.Fatalf("%s: the page says %q", what, got)
		}
		if n := len(w.record(t, w.doc).Versions[0].Signatures); n != 1 {
			t.Fatalf("%s: %d signatures", what, n)
		}
	}
	refused2("the ceremony sent again")
	form(testPassword)
	send(map[string]string{"webauthn": sent["webauthn"]})
	refused2("the assertion sent again with a new nonce")

	got := map[string]int{}
	for _, e := range signEntries(t, s, from) {
		switch {
		case e.Client != signin.PageClient || e.ResourceType != "Observation" || e.ResourceID != w.obs || e.Actor != signer:
			t.Errorf("a signing entry not of the pages, the resource or the signer: %+v", e)
		case e.Action == "sign" && e.Outcome == "success" && e.Version == "1":
			got["signed"]++
		case e.Action == "sign":
			got[e.Detail]++
		}
	}
	for k, want := range map[string]int{"signed": 1, "ceremony=wrong-password": 1, "ceremony=wrong-key": 3, "ceremony=nonce": 1} {
		if got[k] != want {
			t.Errorf("ledger: %d entries %s, want %d (%v)", got[k], k, want, got)
		}
	}

	// $sign, for an app: step 1 carries the key's challenge, step 2 takes
	// the key's answer and the sealed state instead of a code.
	headers := []string{"Authorization", "Bearer " + token, "Content-Type", "application/json"}
	path := signPath("Observation", w.obs, 1)
	step1 := must(t, s.do("POST", path, map[string]any{"meaning": meaningReview}, headers...), http.StatusOK)
	var ch struct {
		Nonce    string          `json:"nonce"`
		WebAuthn json.RawMessage `json:"webauthn"`
		KeyState []byte          `json:"key_state"`
	}
	if err := json.Unmarshal(step1.body, &ch); err != nil || ch.Nonce == "" || len(ch.WebAuthn) == 0 || len(ch.KeyState) == 0 {
		t.Fatalf("$sign step 1 without the key's challenge: %s (%v)", step1.body, err)
	}
	resp, _ := b.Script(getJS, "", string(ch.WebAuthn)).(string)
	body := map[string]any{"meaning": meaningReview, "nonce": ch.Nonce, "password": testPassword, "assertion": json.RawMessage(resp), "key_state": ch.KeyState}
	prov := must(t, s.do("POST", path, body, headers...), http.StatusCreated).json(t)
	if prov["resourceType"] != "Provenance" {
		t.Fatalf("$sign with the key: %v", prov)
	}
	must(t, s.do("POST", path, body, headers...), http.StatusUnauthorized) // the same ceremony again
	if n := len(w.record(t, w.doc).Versions[0].Signatures); n != 2 {
		t.Fatalf("%d signatures after $sign with the key", n)
	}
}
