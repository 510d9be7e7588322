package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

const waOrigin = "https://ward.example:8443"

// softKey is a software WebAuthn authenticator: one ECDSA P-256
// credential, attestation "none", a signature counter it can be told to
// use.
type softKey struct {
	t       *testing.T
	id      []byte
	key     *ecdsa.PrivateKey
	counter uint32
	backup  bool   // backup eligible (a synced passkey)
	origin  string // what the "browser" puts in clientDataJSON
	rpID    string // what the authenticator hashes into authenticatorData
}

func newSoftKey(t *testing.T) *softKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return &softKey{t: t, id: id, key: k, origin: waOrigin, rpID: "ward.example"}
}

var b64 = base64.RawURLEncoding

func (k *softKey) flags(extra byte) byte {
	f := byte(0x01 | 0x04 | extra) // user present, user verified
	if k.backup {
		f |= 0x08
	}
	return f
}

func (k *softKey) authData(flags byte) []byte {
	h := sha256.Sum256([]byte(k.rpID))
	b := append(h[:], flags)
	return binary.BigEndian.AppendUint32(b, k.counter)
}

func (k *softKey) clientData(typ, challenge string) []byte {
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return cd
}

// challenge reads the challenge out of a ceremony's options.
func challengeOf(t *testing.T, options []byte) string {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.Challenge == "" {
		t.Fatalf("options without a challenge: %s (%v)", options, err)
	}
	return o.PublicKey.Challenge
}

// create answers navigator.credentials.create.
func (k *softKey) create(options []byte) []byte {
	k.t.Helper()
	pub, err := k.key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		k.t.Fatal(err)
	}
	x, y := pub[1:33], pub[33:65]
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		k.t.Fatal(err)
	}
	ad := k.authData(k.flags(0x40)) // attested credential data
	ad = append(ad, make([]byte, 16)...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(k.id)))
	ad = append(append(ad, k.id...), cose...)
	att, err := webauthncbor.Marshal(struct {
		Fmt      string         `cbor:"fmt"`
		AttStmt  map[string]any `cbor:"attStmt"`
		AuthData []byte         `cbor:"authData"`
	}{"none", map[string]any{}, ad})
	if err != nil {
		k.t.Fatal(err)
	}
	resp, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"authenticatorAttachment": "cross-platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(k.clientData("webauthn.create", challengeOf(k.t, options))),
			"attestationObject": b64.EncodeToString(att),
			"transports":        []string{"usb"},
		},
	})
	return resp
}

// get answers navigator.credentials.get for user, signing with the
// current counter.
func (k *softKey) get(options []byte, user string) []byte {
	k.t.Helper()
	ad := k.authData(k.flags(0))
	cd := k.clientData("webauthn.get", challengeOf(k.t, options))
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	resp, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString([]byte(user)),
		},
	})
	return resp
}

type waFixture struct {
	users *Users
	st    store.Store
	keys  *keys.Keyring
	clock *clock
	user  store.User
}

func newWAFixture(t *testing.T, origin string) *waFixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kp := filepath.Join(dir, "keys.json")
	if err := keys.CreateLocalFile(kp, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	kf, err := keys.OpenLocalFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(kf, &keystest.MemKeyStore{}, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := &waFixture{st: st, keys: kr, clock: &clock{t: time.Now()}}
	if f.users, err = NewUsers(UsersConfig{Origin: origin, Now: f.clock.Now}, st, kr); err != nil {
		t.Fatal(err)
	}
	if f.user, err = f.users.Create(context.Background(), NewUser{Username: "ada", Role: policy.RoleAdmin, Password: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *waFixture) reload(t *testing.T) store.User {
	t.Helper()
	u, err := f.users.User(context.Background(), f.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// register enrols k for the fixture's user.
func (f *waFixture) register(t *testing.T, k *softKey) (method string, codes []string) {
	t.Helper()
	ctx := context.Background()
	opts, state, err := f.users.BeginWebAuthnRegistration(ctx, f.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	method, codes, err = f.users.FinishWebAuthnRegistration(ctx, f.user.ID, state, k.create(opts))
	if err != nil {
		t.Fatalf("registration: %v", err)
	}
	return method, codes
}

// login runs one sign-in ceremony with k.
func (f *waFixture) login(t *testing.T, k *softKey) (string, error) {
	t.Helper()
	ctx := context.Background()
	opts, state, err := f.users.BeginWebAuthnLogin(ctx, f.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	return f.users.FinishWebAuthnLogin(ctx, f.user.ID, state, k.get(opts, f.user.ID))
}

func TestWebAuthnCeremonies(t *testing.T) {
	f := newWAFixture(t, waOrigin)
	ctx := context.Background()
	if !f.users.WebAuthnEnabled() {
		t.Fatal("WebAuthn off for an https origin with a domain name")
	}
	opts, _, err := f.users.BeginWebAuthnRegistration(ctx, f.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	var creation struct {
		PublicKey struct {
			RP   struct{ ID string }
			User struct{ ID, Name string }
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &creation); err != nil {
		t.Fatal(err)
	}
	if creation.PublicKey.RP.ID != "ward.example" || creation.PublicKey.User.ID != b64.EncodeToString([]byte(f.user.ID)) || creation.PublicKey.User.Name != "ada" {
		t.Fatalf("creation options: rp id %q, user %+v", creation.PublicKey.RP.ID, creation.PublicKey.User)
	}

	k := newSoftKey(t)
	k.counter = 1
	method, codes := f.register(t, k)
	if method != AMRHardwareKey || len(codes) != 10 {
		t.Fatalf("registration = %q with %d recovery codes; want hwk and 10", method, len(codes))
	}
	u := f.reload(t)
	if !HasMFA(u) || !HasWebAuthn(u) || HasTOTP(u) || u.Recovery == nil {
		t.Fatalf("after registration: HasMFA %v HasWebAuthn %v HasTOTP %v recovery %v", HasMFA(u), HasWebAuthn(u), HasTOTP(u), u.Recovery != nil)
	}
	if strings.Contains(string(u.WebAuthn), b64.EncodeToString(k.id)) || strings.Contains(string(u.WebAuthn), "public_key") {
		t.Fatal("stored credentials are not sealed")
	}
	if _, _, err := f.users.BeginWebAuthnRegistration(ctx, f.user.ID); !errors.Is(err, ErrBadUser) {
		t.Fatalf("second registration = %v, want ErrBadUser", err)
	}
	if _, _, err := f.users.BeginTOTP(ctx, f.user.ID); !errors.Is(err, ErrBadUser) {
		t.Fatalf("TOTP enrolment with a key = %v, want ErrBadUser", err)
	}

	opts, _, err = f.users.BeginWebAuthnLogin(ctx, f.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(opts), b64.EncodeToString(k.id)) || !strings.Contains(string(opts), `"rpId":"ward.example"`) {
		t.Fatalf("request options do not name the credential and relying party: %s", opts)
	}
	for i := range 3 {
		k.counter += 5
		if m, err := f.login(t, k); err != nil || m != AMRHardwareKey {
			t.Fatalf("sign-in %d = %q, %v; want hwk", i, m, err)
		}
	}

	// A recovery code works for a user without an authenticator app; a
	// code that is not one does not.
	if _, err := f.users.CheckSecondFactor(ctx, f.user.ID, "123456"); !errors.Is(err, ErrMFAFailed) {
		t.Fatalf("a TOTP-like code for a key-only user = %v, want ErrMFAFailed", err)
	}
	if m, err := f.users.CheckSecondFactor(ctx, f.user.ID, codes[0]); err != nil || m != "recovery" {
		t.Fatalf("recovery code = %q, %v", m, err)
	}

	if err := f.users.RemoveMFA(ctx, f.user.ID); err != nil {
		t.Fatal(err)
	}
	if u := f.reload(t); HasMFA(u) || u.WebAuthn != nil {
		t.Fatal("RemoveMFA left the security key")
	}
	if _, _, err := f.users.BeginWebAuthnLogin(ctx, f.user.ID); !errors.Is(err, ErrMFANotSetUp) {
		t.Fatalf("sign-in begin without keys = %v, want ErrMFANotSetUp", err)
	}
}

func TestWebAuthnSyncedPasskey(t *testing.T) {
	f := newWAFixture(t, waOrigin)
	k := newSoftKey(t)
	k.backup = true
	if m, _ := f.register(t, k); m != AMRSoftwareKey {
		t.Fatalf("registration of a backup-eligible credential = %q, want swk", m)
	}
	// Passkeys often keep their counter at zero: each assertion is still
	// accepted once.
	for range 2 {
		if m, err := f.login(t, k); err != nil || m != AMRSoftwareKey {
			t.Fatalf("sign-in with a zero counter = %q, %v", m, err)
		}
	}
	ctx := context.Background()
	opts, state, err := f.users.BeginWebAuthnLogin(ctx, f.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp := k.get(opts, f.user.ID)
	if _, err := f.users.FinishWebAuthnLogin(ctx, f.user.ID, state, resp); err != nil {
		t.Fatal(err)
	}
	if _, err := f.users.FinishWebAuthnLogin(ctx, f.user.ID, state, resp); !errors.Is(err, ErrMFAFailed) || errors.Is(err, ErrAuthenticatorCloned) {
		t.Fatalf("replayed assertion = %v, want ErrMFAFailed (not a clone)", err)
	}
	if m, err := f.login(t, k); err != nil || m != AMRSoftwareKey {
		t.Fatalf("sign-in after a refused replay = %q, %v", m, err)
	}
}

func TestWebAuthnCounterRegression(t *testing.T) {
	f := newWAFixture(t, waOrigin)
	k := newSoftKey(t)
	k.counter = 10
	f.register(t, k)
	k.counter = 20
	if _, err := f.login(t, k); err != nil {
		t.Fatal(err)
	}
	clone := *k
	clone.counter = 15 // a copy of the key, behind the original
	if _, err := f.login(t, &clone); !errors.Is(err, ErrAuthenticatorCloned) || !errors.Is(err, ErrMFAFailed) {
		t.Fatalf("sign-in with a counter that went back = %v, want ErrAuthenticatorCloned", err)
	}
	u := f.reload(t)
	if u.Failures != 1 {
		t.Errorf("a clone did not count as a failure: failures %d", u.Failures)
	}
	if !HasMFA(u) {
		t.Error("a flagged key no longer counts as enrolled: the account could enrol a new factor with a password alone")
	}
	// The flagged credential is refused from now on, even by the original.
	if _, _, err := f.users.BeginWebAuthnLogin(context.Background(), f.user.ID); !errors.Is(err, ErrMFANotSetUp) {
		t.Fatalf("sign-in begin with only a flagged key = %v, want ErrMFANotSetUp", err)
	}
	// Equal counters are a regression too.
	g := newWAFixture(t, waOrigin)
	k2 := newSoftKey(t)
	k2.counter = 3
	g.register(t, k2)
	if _, err := g.login(t, k2); !errors.Is(err, ErrAuthenticatorCloned) {
		t.Fatalf("sign-in with the registration's counter = %v, want ErrAuthenticatorCloned", err)
	}
}

// TestWebAuthnRefusals: each response is wrong in one way and must be
// refused without storing anything.
func TestWebAuthnRefusals(t *testing.T) {
	ctx := context.Background()
	regCases := []struct {
		name   string
		mutate func(k *softKey)
	}{
		{"other origin", func(k *softKey) { k.origin = "https://evil.example" }},
		{"other port", func(k *softKey) { k.origin = "https://ward.example:9443" }},
		{"http origin", func(k *softKey) { k.origin = "http://ward.example:8443" }},
		{"other relying party id", func(k *softKey) { k.rpID = "evil.example" }},
		{"parent domain as relying party id", func(k *softKey) { k.rpID = "example" }},
	}
	for _, c := range regCases {
		t.Run("registration/"+c.name, func(t *testing.T) {
			f := newWAFixture(t, waOrigin)
			k := newSoftKey(t)
			c.mutate(k)
			opts, state, err := f.users.BeginWebAuthnRegistration(ctx, f.user.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.users.FinishWebAuthnRegistration(ctx, f.user.ID, state, k.create(opts)); !errors.Is(err, ErrMFAFailed) {
				t.Fatalf("= %v, want ErrMFAFailed", err)
			}
			if u := f.reload(t); HasMFA(u) || u.WebAuthn != nil || u.Recovery != nil {
				t.Fatal("a refused registration stored something")
			}
		})
	}

	loginCases := []struct {
		name   string
		mutate func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) (s, r []byte)
	}{
		{"other origin", func(t *testing.T, f *waFixture, k *softKey, opts, state, _ []byte) ([]byte, []byte) {
			k.origin = "https://evil.example"
			return state, k.get(opts, f.user.ID)
		}},
		{"other relying party id", func(t *testing.T, f *waFixture, k *softKey, opts, state, _ []byte) ([]byte, []byte) {
			k.rpID = "evil.example"
			return state, k.get(opts, f.user.ID)
		}},
		{"flipped signature bit", func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) ([]byte, []byte) {
			return state, flipField(t, resp, "signature")
		}},
		{"flipped authenticator data bit", func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) ([]byte, []byte) {
			return state, flipField(t, resp, "authenticatorData")
		}},
		{"other key", func(t *testing.T, f *waFixture, k *softKey, opts, state, _ []byte) ([]byte, []byte) {
			other := newSoftKey(t)
			other.id = k.id
			other.counter = k.counter
			return state, other.get(opts, f.user.ID)
		}},
		{"challenge of another ceremony", func(t *testing.T, f *waFixture, k *softKey, _, state, _ []byte) ([]byte, []byte) {
			opts2, _, err := f.users.BeginWebAuthnLogin(ctx, f.user.ID)
			if err != nil {
				t.Fatal(err)
			}
			return state, k.get(opts2, f.user.ID)
		}},
		{"registration state", func(t *testing.T, f *waFixture, k *softKey, opts, _, resp []byte) ([]byte, []byte) {
			st, _ := json.Marshal(webAuthnState{Kind: "create", UserID: f.user.ID, Expires: f.clock.Now().Add(time.Minute)})
			return st, resp
		}},
		{"another user's state", func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) ([]byte, []byte) {
			var s webAuthnState
			_ = json.Unmarshal(state, &s)
			s.UserID = "someone-else"
			st, _ := json.Marshal(s)
			return st, resp
		}},
		{"expired state", func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) ([]byte, []byte) {
			f.clock.Add(webAuthnTimeout + time.Second)
			return state, resp
		}},
		{"no state", func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) ([]byte, []byte) {
			return nil, resp
		}},
		{"not JSON", func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) ([]byte, []byte) {
			return state, []byte("{")
		}},
		{"too large", func(t *testing.T, f *waFixture, k *softKey, opts, state, resp []byte) ([]byte, []byte) {
			return state, append(resp, make([]byte, maxWebAuthnResponse)...)
		}},
	}
	for _, c := range loginCases {
		t.Run("sign-in/"+c.name, func(t *testing.T) {
			f := newWAFixture(t, waOrigin)
			k := newSoftKey(t)
			f.register(t, k)
			k.counter = 1
			before := f.reload(t)
			opts, state, err := f.users.BeginWebAuthnLogin(ctx, f.user.ID)
			if err != nil {
				t.Fatal(err)
			}
			st, resp := c.mutate(t, f, k, opts, state, k.get(opts, f.user.ID))
			if m, err := f.users.FinishWebAuthnLogin(ctx, f.user.ID, st, resp); !errors.Is(err, ErrMFAFailed) || errors.Is(err, ErrAuthenticatorCloned) {
				t.Fatalf("= %q, %v; want ErrMFAFailed", m, err)
			}
			after := f.reload(t)
			if string(after.WebAuthn) != string(before.WebAuthn) {
				t.Error("a refused assertion changed the stored credentials")
			}
			// The genuine key still works afterwards (past any throttle).
			f.clock.Add(time.Hour)
			k.origin, k.rpID, k.counter = waOrigin, "ward.example", 2
			if _, err := f.login(t, k); err != nil {
				t.Fatalf("the genuine key after a refusal: %v", err)
			}
		})
	}
}

// flipField flips one bit of a base64url field of a response.
func flipField(t *testing.T, resp []byte, field string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatal(err)
	}
	r := m["response"].(map[string]any)
	raw, err := b64.DecodeString(r[field].(string))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x10
	r[field] = b64.EncodeToString(raw)
	out, _ := json.Marshal(m)
	return out
}

func TestWebAuthnThrottledAndTampered(t *testing.T) {
	ctx := context.Background()
	f := newWAFixture(t, waOrigin)
	k := newSoftKey(t)
	f.register(t, k)
	k.counter = 1
	locked := f.reload(t)
	locked.Failures, locked.LockedUntil = 9, f.clock.Now().Add(time.Minute)
	if _, err := f.st.UpdateUser(ctx, locked); err != nil {
		t.Fatal(err)
	}
	if _, err := f.login(t, k); !errors.Is(err, ErrMFAFailed) {
		t.Fatalf("a genuine assertion while throttled = %v, want ErrMFAFailed", err)
	}
	if u := f.reload(t); u.Failures != 9 || HasWebAuthn(u) && string(u.WebAuthn) != string(locked.WebAuthn) {
		t.Fatal("an assertion refused while throttled changed the user")
	}
	f.clock.Add(time.Minute)
	if _, err := f.login(t, k); err != nil {
		t.Fatalf("a genuine assertion after the throttle: %v", err)
	}
	if u := f.reload(t); u.Failures != 0 {
		t.Fatalf("success did not reset failures: %d", u.Failures)
	}

	// Sealed credentials moved to another user, or with a flipped bit, do
	// not open.
	other, err := f.users.Create(ctx, NewUser{Username: "mallory", Role: policy.RoleAdmin, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	other.WebAuthn = f.reload(t).WebAuthn
	if _, err := f.st.UpdateUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.users.BeginWebAuthnLogin(ctx, other.ID); err == nil {
		t.Fatal("another user's sealed credentials opened")
	}
	u := f.reload(t)
	u.WebAuthn[len(u.WebAuthn)-1] ^= 1
	if _, err := f.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.users.BeginWebAuthnLogin(ctx, u.ID); err == nil {
		t.Fatal("tampered sealed credentials opened")
	}
}

func TestWebAuthnOrigin(t *testing.T) {
	ctx := context.Background()
	for _, origin := range []string{"", "https://127.0.0.1:8443", "https://[::1]:8443"} {
		f := newWAFixture(t, origin)
		if f.users.WebAuthnEnabled() {
			t.Errorf("origin %q: WebAuthn on", origin)
		}
		if _, _, err := f.users.BeginWebAuthnRegistration(ctx, f.user.ID); err == nil {
			t.Errorf("origin %q: registration began", origin)
		}
	}
	f := newWAFixture(t, "")
	for _, origin := range []string{"http://ward.example", "ward.example", "https://user@ward.example", "https://"} {
		if _, err := NewUsers(UsersConfig{Origin: origin}, f.st, f.keys); err == nil {
			t.Errorf("origin %q accepted", origin)
		}
	}
	// An issuer with a path: the origin is its scheme, host and port.
	u, err := NewUsers(UsersConfig{Origin: "https://ward.example:8443/ward"}, f.st, f.keys)
	if err != nil || !u.WebAuthnEnabled() {
		t.Fatalf("issuer with a path: %v", err)
	}
	opts, _, err := u.BeginWebAuthnRegistration(ctx, f.user.ID)
	if err != nil || !strings.Contains(string(opts), `"id":"ward.example"`) {
		t.Fatalf("issuer with a path: options %s, %v", opts, err)
	}
}
