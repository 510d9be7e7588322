package signin

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// The signing pages (21 CFR 11.200(a), 11.50): a person using a browser
// signs one exact version of a resource, as POST .../$sign does for an app.
//
//	GET  /signin/sign?target=Type/id/_history/N   the version (type, id, version,
//	                                               SHA-256) and its signatures; a meaning chooser
//	POST /signin/sign  target, meaning             step 1: a nonce; the ceremony form
//	POST /signin/sign  target, meaning, nonce,     step 2: the signature; to the
//	                   password, code (or          signatures page (303)
//	                   webauthn, keystate)
//	GET  /signin/signatures?target=...             the version's signatures (read only)
//
// The pages need the browser's live Ward session, signed in with the
// second factor its role or account has: it says who the person is, and
// nothing more. The signing itself is the ceremony of $sign: the person
// enters their password and a code from their authenticator app (or uses
// their key, below) again, for this version and meaning, whatever the session; a session alone
// never signs. A person with a security key or passkey may use it instead
// of the code: the ceremony form then carries a WebAuthn assertion
// challenge issued with the nonce (its options for the page's one script,
// webauthn.js, and its sealed state), and the key's button signs with the
// password entered and the key's answer. Each page's work is done by the ESign the provider was
// given (package api's), which decides and records it as it does $sign
// and $signatures: the same policy decision, ceremony, throttle and
// ledger entries. The pages show ids, the content's hash and the
// signatures' manifestations (printed name, date and time with zone,
// meaning), never the resource's content. Posts are checked as every
// sign-in form is (CSRF token and Origin).

// Paths of the signing pages.
const (
	PathSign       = PathSignIn + "/sign"
	PathSignatures = PathSignIn + "/signatures"
)

// PageClient is the client id the signing pages act as in policy
// decisions and ledger entries. A registered client's id starts "ward-"
// and a random part (auth), so none is this one.
const PageClient = "ward:signin-pages"

// Errors an ESign returns for the pages to show: the version is unknown
// or not the person's to see (one answer, 404), the person may see it but
// not sign it (403), the meaning is not a signature type code (400), the
// ceremony failed (401; which part is not told), or the person or the
// source is throttled (429).
var (
	ErrSignNotFound  = errors.New("signin: no such version")
	ErrSignForbidden = errors.New("signin: the person may not sign this version")
	ErrSignInvalid   = errors.New("signin: the signing request is malformed")
	ErrSignCeremony  = errors.New("signin: the signing ceremony failed")
	ErrSignThrottled = errors.New("signin: too many failed signing attempts")
)

// Person is the person of the browser's session.
type Person struct {
	User    store.User
	MFATime time.Time // when the session last checked a second factor
}

// SignTarget names one version of a resource.
type SignTarget struct {
	Type, ID string
	Version  int64
}

// String is the target as the pages and $sign name it, "Type/id/_history/N".
func (t SignTarget) String() string {
	return t.Type + "/" + t.ID + "/_history/" + strconv.FormatInt(t.Version, 10)
}

// parseTarget reads "Type/id/_history/N". The parts are checked for
// shape only; what they name is ESign's to find.
func parseTarget(s string) (SignTarget, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 || parts[2] != "_history" || len(s) > 200 {
		return SignTarget{}, false
	}
	v, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || v < 1 || !resourceType(parts[0]) || !policy.ValidID(parts[1]) {
		return SignTarget{}, false
	}
	return SignTarget{Type: parts[0], ID: parts[1], Version: v}, true
}

// resourceType reports whether s has the shape of a FHIR resource type:
// a capital letter, then letters, at most 64.
func resourceType(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// SignedVersion is one version as the pages show it.
type SignedVersion struct {
	SHA256     string // hex SHA-256 of the version as stored, which a signature binds
	Signatures []Manifestation
}

// Manifestation is one signature as shown (11.50): the printed name, the
// date and time with zone and the meaning, together, and whether Ward
// verified it.
type Manifestation struct {
	Signer              string // the signer's user id
	Name, When, Meaning string
	Line                string // "Signed by <name> on <date> <time> <zone> — <meaning>"
	Valid               bool
}

// Ceremony is what the person entered to sign: step 2 of the ceremony.
// Assertion and KeyState are set instead of Code when the person used
// their security key or passkey.
type Ceremony struct {
	Meaning, Nonce, Password, Code string
	Assertion, KeyState            []byte
}

// SignOffer is step 1's answer: the nonce and, for a person with a
// security key or passkey, the WebAuthn assertion's options (JSON) and
// its sealed state.
type SignOffer struct {
	Nonce                string
	KeyOptions, KeyState []byte
}

// ESign does the signing pages' work against the records (package api's):
// each call is decided and recorded as $sign and $signatures are, for p
// as the caller. Errors the pages show are the Err* above.
type ESign interface {
	// Version returns the target and its signatures, as p may see them.
	Version(ctx context.Context, p Person, t SignTarget) (SignedVersion, error)
	// Challenge is step 1: a nonce for p to sign t with meaning.
	Challenge(ctx context.Context, p Person, t SignTarget, meaning string) (SignOffer, error)
	// Sign is step 2: the ceremony, then the signature.
	Sign(ctx context.Context, p Person, t SignTarget, c Ceremony) error
}

// WithESign serves the signing pages with e; without it they answer 404.
func (p *Provider) WithESign(e ESign) *Provider {
	p.pages.esign = e
	return p
}

// signView is what the signing templates get besides view.
type signView struct {
	Target   string
	Version  SignedVersion
	Meanings []Meaning
	// Meaning and Nonce are set on the ceremony form (step 2), and
	// KeyState (base64url) when it offers the person's security key.
	Meaning  Meaning
	Nonce    string
	KeyState string
	Signed   bool // the signatures page right after a signing
}

// Meaning is a signature type code as the chooser offers it.
type Meaning struct{ Code, Display string }

// SignMeanings are the meanings the sign page offers, the R4 Signature
// type codes of the four uses the pages are for (author, review,
// approval as verification, responsibility as validation); $sign takes
// every code.
var SignMeanings = []Meaning{
	{"1.2.840.10065.1.12.1.1", "Author's Signature"},
	{"1.2.840.10065.1.12.1.13", "Review Signature"},
	{"1.2.840.10065.1.12.1.5", "Verification Signature"},
	{"1.2.840.10065.1.12.1.6", "Validation Signature"},
}

func lookupSignMeaning(code string) (Meaning, bool) {
	for _, m := range SignMeanings {
		if m.Code == code {
			return m, true
		}
	}
	return Meaning{}, false
}

// signPerson returns the person of the browser's live session, signed in
// with the second factor their account or role has. It answers the
// request itself (and reports false) when there is none.
func (pg *pages) signPerson(w http.ResponseWriter, r *http.Request) (Person, bool) {
	if pg.esign == nil {
		pg.render(w, r, http.StatusNotFound, "message", view{Title: "Not found", Message: "There is no such page."})
		return Person{}, false
	}
	s, u, ok := pg.session(r)
	if ok && !auth.IsFederated(u) && (auth.HasMFA(u) || pg.p.users.MFARequired(u)) && s.MFATime.IsZero() {
		ok = false // the password alone, in a sign-in its second factor did not finish
	}
	if !ok {
		pg.p.event(r.Context(), Event{Action: "signin", Detail: "no-session"})
		pg.render(w, r, http.StatusUnauthorized, "message", view{Title: "Sign in first",
			Message: "Signing a record needs you signed in to Ward in this browser. Sign in through your app, then open this page again."})
		return Person{}, false
	}
	return Person{User: u, MFATime: s.MFATime}, true
}

// signTarget reads the target parameter, answering the request itself
// (and reporting false) when it is malformed.
func (pg *pages) signTarget(w http.ResponseWriter, r *http.Request) (SignTarget, bool) {
	t, ok := parseTarget(r.FormValue("target"))
	if !ok {
		pg.render(w, r, http.StatusNotFound, "message", view{Title: "Not found", Message: "There is no such record version, or it is not yours to see."})
	}
	return t, ok
}

// signRequest answers a request the signing pages do not serve (a
// method, no session, no such target) and otherwise returns its person
// and target; post is the method besides GET and HEAD the page takes.
func (pg *pages) signRequest(w http.ResponseWriter, r *http.Request, post string) (Person, SignTarget, bool) {
	if !pg.signMethod(w, r, post) {
		return Person{}, SignTarget{}, false
	}
	p, ok := pg.signPerson(w, r)
	if !ok {
		return Person{}, SignTarget{}, false
	}
	t, ok := pg.signTarget(w, r)
	return p, t, ok
}

// sign serves the sign page: the version and a meaning chooser (GET),
// then the ceremony form (step 1), then the signing (step 2).
func (pg *pages) sign(w http.ResponseWriter, r *http.Request) {
	p, t, ok := pg.signRequest(w, r, http.MethodPost)
	if !ok {
		return
	}
	v := view{Title: "Sign a record", User: p.User.Username, Sign: &signView{Target: t.String(), Meanings: SignMeanings}}
	if r.Method != http.MethodPost {
		pg.signPage(w, r, p, t, v, http.StatusOK)
		return
	}
	ctx := r.Context()
	code := r.PostFormValue("meaning")
	m, known := lookupSignMeaning(code)
	var err error
	switch nonce := r.PostFormValue("nonce"); {
	case !known:
		err = ErrSignInvalid
	case nonce == "":
		var offer SignOffer
		if offer, err = pg.esign.Challenge(ctx, p, t, code); err == nil {
			// The ceremony form shows again what is signed, as it stands.
			v.Title, v.Sign.Meaning, v.Sign.Nonce = "Confirm your signature", m, offer.Nonce
			if len(offer.KeyOptions) > 0 && len(offer.KeyState) > 0 {
				v.WebAuthn, v.Sign.KeyState = string(offer.KeyOptions), base64.RawURLEncoding.EncodeToString(offer.KeyState)
			}
			pg.signPage(w, r, p, t, v, http.StatusOK)
			return
		}
	default:
		c := Ceremony{Meaning: code, Nonce: nonce, Password: r.PostFormValue("password"), Code: r.PostFormValue("code")}
		if a := r.PostFormValue("webauthn"); a != "" {
			c.Code, c.Assertion = "", []byte(a)
			// A state that is not base64url is no state: the ceremony fails.
			c.KeyState, _ = base64.RawURLEncoding.DecodeString(r.PostFormValue("keystate"))
		}
		err = pg.esign.Sign(ctx, p, t, c)
		if err == nil {
			http.Redirect(w, r, PathSignatures+"?signed=1&target="+url.QueryEscape(t.String()), http.StatusSeeOther)
			return
		}
	}
	// A refusal shows the version again, to start over: a nonce is good
	// for one answer, right or wrong.
	status, ok := pg.signError(w, r, err, &v)
	if ok {
		pg.signPage(w, r, p, t, v, status)
	}
}

// signatures serves the signatures page: the version's signatures, read only.
func (pg *pages) signatures(w http.ResponseWriter, r *http.Request) {
	p, t, ok := pg.signRequest(w, r, "")
	if !ok {
		return
	}
	v := view{Title: "Signatures", User: p.User.Username, Sign: &signView{Target: t.String()}}
	pg.signPage(w, r, p, t, v, http.StatusOK)
}

// signedBy reports whether sv has a valid signature of userID's.
func signedBy(sv SignedVersion, userID string) bool {
	for _, m := range sv.Signatures {
		if m.Valid && m.Signer == userID {
			return true
		}
	}
	return false
}

// signMethod answers a request of a method the page does not serve (GET
// and HEAD, and post when not ""), and reports whether it did not.
func (pg *pages) signMethod(w http.ResponseWriter, r *http.Request, post string) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, post:
		return true
	}
	allow := "GET, HEAD"
	if post != "" {
		allow += ", POST"
	}
	w.Header().Set("Allow", allow)
	pg.render(w, r, http.StatusMethodNotAllowed, "message", view{Title: "Not allowed", Message: "This page does not answer " + r.Method + "."})
	return false
}

// signPage renders the sign page (v.Sign.Meanings set) or the signatures
// page with the version as the person may see it.
func (pg *pages) signPage(w http.ResponseWriter, r *http.Request, p Person, t SignTarget, v view, status int) {
	sv, err := pg.esign.Version(r.Context(), p, t)
	if err != nil {
		if s, ok := pg.signError(w, r, err, &v); ok {
			pg.render(w, r, s, "message", view{Title: "Cannot show this record", Message: v.Error})
		}
		return
	}
	v.Sign.Version = sv
	// "Signed" is said after a signing only when the version has the
	// person's signature: the parameter alone claims nothing.
	v.Sign.Signed = r.FormValue("signed") == "1" && signedBy(sv, p.User.ID)
	page := "signatures"
	if v.Sign.Meanings != nil {
		page = "sign"
	}
	pg.render(w, r, status, page, v)
}

// signError puts the message of an ESign error in v and returns the
// status to answer with; it answers the request itself (and reports
// false) when the error is not the person's to see.
func (pg *pages) signError(w http.ResponseWriter, r *http.Request, err error, v *view) (int, bool) {
	switch {
	case errors.Is(err, ErrSignNotFound):
		v.Error = "There is no such record version, or it is not yours to see."
		return http.StatusNotFound, true
	case errors.Is(err, ErrSignForbidden):
		v.Error = "You may not sign this record: your account does not hold the right to sign, or your role may not sign records of this type."
		return http.StatusForbidden, true
	case errors.Is(err, ErrSignInvalid):
		v.Error = "Choose what your signature means."
		return http.StatusBadRequest, true
	case errors.Is(err, ErrSignCeremony):
		v.Error = "Signing failed: nothing was signed. Check your password and the code from your authenticator app (each code works once; wait for the next one) or use your security key, then start again."
		return http.StatusUnauthorized, true
	case errors.Is(err, ErrSignThrottled):
		v.Error = "Too many failed attempts to sign. Wait a few minutes, then start again."
		return http.StatusTooManyRequests, true
	}
	pg.fail(w, r, err)
	return 0, false
}
