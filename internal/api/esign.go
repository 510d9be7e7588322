package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/secevent"
)

// Electronic signatures (records/esign.go, auth/esign.go):
//
//	POST /fhir/{type}/{id}/_history/{vid}/$sign  {"meaning"}                          200, a nonce
//	POST /fhir/{type}/{id}/_history/{vid}/$sign  {"meaning","nonce","password","code"} 201, the Provenance
//	     or, with a security key or passkey,     {"meaning","nonce","password",
//	                                              "assertion","key_state"}
//	GET  /fhir/{type}/{id}/$signatures                                               200, the signature record
//
// A ceremony that fails answers 401 (which part failed is not told), one
// refused while the person or the source is throttled 429 with
// Retry-After. Each failure raises esign.ceremony.failed (counted), and a
// failure that throttles esign.ceremony.throttled at once.

// WithSigning serves $sign with the signing ceremony sg; without it
// $sign answers 404.
func (s *Server) WithSigning(sg *auth.Signing) *Server {
	s.signing = sg
	return s
}

// signInput is $sign's body. Assertion (the PublicKeyCredential of
// navigator.credentials.get, as JSON) and KeyState (as step 1 gave it)
// stand in for Code when the signer uses a security key or passkey.
type signInput struct {
	Meaning   string          `json:"meaning"`
	Nonce     string          `json:"nonce"`
	Password  string          `json:"password"`
	Code      string          `json:"code"`
	Assertion json.RawMessage `json:"assertion,omitempty"`
	KeyState  []byte          `json:"key_state,omitempty"`
}

// sign serves $sign.
func (s *Server) sign(w http.ResponseWriter, r *http.Request, c records.Caller, typ, id string, version int64) error {
	if r.Method != http.MethodPost {
		return errMethod
	}
	if s.signing == nil {
		return errNotFound
	}
	if _, err := fixedParams(r); err != nil {
		return err
	}
	var in signInput
	if err := decodeJSONAs(r, &in, "application/json", "application/fhir+json"); err != nil {
		return err
	}
	x := exchangeOf(r)
	req := records.SignRequest{Type: typ, ID: id, Version: version, Meaning: in.Meaning}
	cer := &ceremony{sg: s.signing, userID: c.UserID, source: c.Source, in: in}
	if in.Nonce == "" {
		x.action = records.ActionSignChallenge
		if in.Password != "" || in.Code != "" || len(in.Assertion) > 0 || len(in.KeyState) > 0 {
			return badRequestf("password and code are sent with the nonce of a challenge: ask for one first (meaning only)")
		}
		ch, err := s.records.SignChallenge(r.Context(), c, req, cer)
		if err != nil {
			return err
		}
		m, _ := esign.LookupMeaning(in.Meaning)
		out := map[string]any{
			"target": ch.Target, "meaning": m, "nonce": ch.Nonce, "expires": ch.Expires,
			"signer": map[string]any{"id": ch.Signer.UserID, "name": ch.Signer.Name},
			"next":   "POST the same URL with meaning, nonce, password and code (from the authenticator app) to sign",
		}
		if len(ch.KeyOptions) > 0 {
			out["webauthn"], out["key_state"] = json.RawMessage(ch.KeyOptions), ch.KeyState
			out["next"] = "POST the same URL with meaning, nonce, password and code (from the authenticator app), or assertion (navigator.credentials.get with webauthn) and key_state instead of code, to sign"
		}
		writeValue(w, http.StatusOK, out)
		return nil
	}
	x.action = records.ActionSign
	e, err := s.records.Sign(r.Context(), c, req, cer)
	if err != nil {
		s.ceremonyEvents(x, c, err)
		return err
	}
	w.Header().Set("Location", s.cfg.BaseURL+"/fhir/"+e.Location())
	return s.writeEntry(w, r, e, nil, http.StatusCreated)
}

// ceremonyEvents raises the security events of a failed ceremony.
func (s *Server) ceremonyEvents(x *exchange, c records.Caller, err error) {
	var ce *auth.CeremonyError
	if !errors.As(err, &ce) {
		return
	}
	now := s.cfg.Now()
	if ce.Locked {
		e := secevent.New(secevent.SigningThrottled, now)
		e.Actor, e.Client, e.Source, e.Outcome = c.UserID, c.ClientID, c.Source, secevent.Failure
		s.emit(e.With(secevent.AttrUser, c.UserID).With(secevent.AttrRequestID, c.RequestID))
	}
	if ce.Reason == "throttled" {
		return // ratelimit.rejected says it (429)
	}
	if ce.Reason == "cloned-key" { // as at sign-in: the key may have been copied
		e := secevent.New(secevent.CredentialSuspect, now)
		e.Actor, e.Client, e.Source, e.Outcome = c.UserID, c.ClientID, c.Source, secevent.Failure
		s.emit(e.With(secevent.AttrReason, "counter-went-back").With(secevent.AttrRequestID, c.RequestID))
	}
	e := secevent.New(secevent.SigningFailed, now)
	e.Actor, e.Client, e.Source, e.Outcome = c.UserID, c.ClientID, c.Source, secevent.Failure
	e = e.With(secevent.AttrReason, ce.Reason).With(secevent.AttrRequestID, c.RequestID)
	s.emit(s.events.note(eventKey{kind: secevent.SigningFailed, actor: c.UserID, client: c.ClientID, source: c.Source, action: x.action + " " + ce.Reason}, e)...)
}

// ceremony binds package auth's ceremony to one request: its token's
// user, its source and the credentials it sent (records.Ceremony).
type ceremony struct {
	sg             *auth.Signing
	userID, source string
	in             signInput
}

func (c *ceremony) Challenge(ctx context.Context, target, meaning string) (records.SignChallenge, error) {
	ch, err := c.sg.Challenge(ctx, c.userID, target, meaning)
	if err != nil {
		return records.SignChallenge{}, ceremonyErr(err)
	}
	return records.SignChallenge{Nonce: ch.Nonce, Expires: ch.Expires.UTC().Format(time.RFC3339), Signer: signerOf(ch.Signer),
		KeyOptions: ch.KeyOptions, KeyState: ch.KeyState}, nil
}

func (c *ceremony) Confirm(ctx context.Context, target, meaning string) (records.Signer, error) {
	sg, err := c.sg.Confirm(ctx, auth.Confirmation{UserID: c.userID, Source: c.source, Target: target, Meaning: meaning,
		Nonce: c.in.Nonce, Password: c.in.Password, Code: c.in.Code, Assertion: c.in.Assertion, KeyState: c.in.KeyState})
	if err != nil {
		return records.Signer{}, ceremonyErr(err)
	}
	return signerOf(sg), nil
}

func signerOf(s auth.Signer) records.Signer {
	return records.Signer{UserID: s.UserID, Name: s.Name, Right: s.Right, Methods: s.Methods}
}

// ceremonyErr maps a ceremony's failure to the records errors that
// package api answers: 401, or 429 while throttled.
func ceremonyErr(err error) error {
	var ce *auth.CeremonyError
	switch {
	case errors.As(err, &ce) && ce.Reason == "throttled":
		return &ceremonyFailure{ce: ce, base: records.ErrThrottled}
	case errors.As(err, &ce):
		return &ceremonyFailure{ce: ce, base: records.ErrCeremony}
	case errors.Is(err, auth.ErrUnknownUser):
		return records.ErrForbidden
	}
	return err
}

// ceremonyFailure is a failed ceremony as records and api see it.
type ceremonyFailure struct {
	ce   *auth.CeremonyError
	base error
}

func (e *ceremonyFailure) Error() string { return e.ce.Error() }

// Unwrap gives the records error and the ceremony's, and, while
// throttled, the 429 that api answers with Retry-After.
func (e *ceremonyFailure) Unwrap() []error {
	if e.base == records.ErrThrottled {
		return []error{e.base, e.ce, &throttledError{retryAfter: e.ce.RetryAfter, policy: "esign"}}
	}
	return []error{e.base, e.ce}
}

// CeremonyReason names the failure for the ledger entry.
func (e *ceremonyFailure) CeremonyReason() string { return e.ce.Reason }

// signatures serves $signatures: the signature record (esign.Record).
func (s *Server) signatures(w http.ResponseWriter, r *http.Request, c records.Caller, typ, id string) error {
	if r.Method != http.MethodGet {
		return errMethod
	}
	if _, err := fixedParams(r); err != nil {
		return err
	}
	exchangeOf(r).action = records.ActionSignatures
	rec, err := s.records.Signatures(r.Context(), c, typ, id)
	if err != nil {
		return err
	}
	writeValue(w, http.StatusOK, rec)
	return nil
}
