package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/signin"
)

// pageSigning does the work of the sign-in UI's signing pages
// (signin.ESign) through the records service, as $sign and $signatures
// do: the same SignChallenge, Sign and Signatures, so the same policy
// decisions (reading the version, policy.DecideSign), ceremony, throttle,
// security events and ledger entries. The caller is the person of the
// browser's session acting through the pages (signin.PageClient), with
// the role, care relationships and break-the-glass grants a token of
// theirs would carry and the narrowest scopes the pages need: reading the
// target's type and Provenance. The request's exchange is the caller's,
// so the entries name the request, its source and the person.
type pageSigning struct{ s *Server }

// caller makes p the request's caller for reading typ.
func (ps pageSigning) caller(ctx context.Context, p signin.Person, typ string) (records.Caller, error) {
	x, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok {
		return records.Caller{}, errors.New("api: a signing page's request has no exchange")
	}
	var scopes []policy.Scope
	for _, s := range []string{"user/" + typ + ".rs", "user/Provenance.rs"} {
		sc, err := policy.ParseScope(s)
		if err != nil {
			return x.caller, signin.ErrSignNotFound // not a resource type: nothing is there
		}
		scopes = append(scopes, sc)
	}
	u := p.User
	x.caller.Subject = policy.Subject{ClientID: signin.PageClient, Scopes: scopes, UserID: u.ID, Role: u.Role, FHIRUser: u.FHIRUser}
	x.user, x.mfa, x.mfaTime = u.ID, !p.MFATime.IsZero(), p.MFATime
	if err := ps.s.records.Relate(ctx, &x.caller); err != nil {
		return x.caller, err
	}
	return x.caller, nil
}

// Version answers the pages' view of one version from the signature
// record $signatures serves, verified the same way.
func (ps pageSigning) Version(ctx context.Context, p signin.Person, t signin.SignTarget) (signin.SignedVersion, error) {
	c, err := ps.caller(ctx, p, t.Type)
	if err != nil {
		return signin.SignedVersion{}, pageErr(err)
	}
	rec, err := ps.s.records.Signatures(ctx, c, t.Type, t.ID)
	if err = pageErr(err); errors.Is(err, signin.ErrSignForbidden) {
		return signin.SignedVersion{}, fmt.Errorf("%w: %w", signin.ErrSignNotFound, err) // seeing is not signing: not there
	}
	if err != nil {
		return signin.SignedVersion{}, err
	}
	for _, v := range rec.Versions {
		if v.Version != t.Version {
			continue
		}
		if v.Deleted {
			return signin.SignedVersion{}, signin.ErrSignNotFound
		}
		out := signin.SignedVersion{SHA256: v.SHA256}
		for _, sg := range v.Signatures {
			out.Signatures = append(out.Signatures, manifestation(sg))
		}
		return out, nil
	}
	return signin.SignedVersion{}, signin.ErrSignNotFound
}

// manifestation is a signature as the pages show it: what the record
// says, the line only for a signature that verified.
func manifestation(sg esign.Signature) signin.Manifestation {
	m := signin.Manifestation{Signer: sg.Signer, Name: sg.Name, When: sg.When, Meaning: sg.Meaning.Display, Valid: sg.Status == esign.StatusValid}
	if m.Valid {
		m.Line = sg.Manifestation
		if when, err := time.Parse(time.RFC3339Nano, sg.When); err == nil {
			m.When = when.Format("2006-01-02 15:04:05 MST")
		}
	}
	return m
}

// Challenge is $sign's step 1.
func (ps pageSigning) Challenge(ctx context.Context, p signin.Person, t signin.SignTarget, meaning string) (signin.SignOffer, error) {
	if ps.s.signing == nil {
		return signin.SignOffer{}, signin.ErrSignNotFound
	}
	c, err := ps.caller(ctx, p, t.Type)
	if err != nil {
		return signin.SignOffer{}, pageErr(err)
	}
	exchangeFrom(ctx).action = records.ActionSignChallenge
	req := records.SignRequest{Type: t.Type, ID: t.ID, Version: t.Version, Meaning: meaning}
	ch, err := ps.s.records.SignChallenge(ctx, c, req, &ceremony{sg: ps.s.signing, userID: c.UserID, source: c.Source})
	if err != nil {
		return signin.SignOffer{}, pageErr(err)
	}
	return signin.SignOffer{Nonce: ch.Nonce, KeyOptions: ch.KeyOptions, KeyState: ch.KeyState}, nil
}

// Sign is $sign's step 2, with its security events.
func (ps pageSigning) Sign(ctx context.Context, p signin.Person, t signin.SignTarget, in signin.Ceremony) error {
	if ps.s.signing == nil {
		return signin.ErrSignNotFound
	}
	c, err := ps.caller(ctx, p, t.Type)
	if err != nil {
		return pageErr(err)
	}
	x := exchangeFrom(ctx)
	x.action = records.ActionSign
	req := records.SignRequest{Type: t.Type, ID: t.ID, Version: t.Version, Meaning: in.Meaning}
	cer := &ceremony{sg: ps.s.signing, userID: c.UserID, source: c.Source,
		in: signInput{Meaning: in.Meaning, Nonce: in.Nonce, Password: in.Password, Code: in.Code, Assertion: in.Assertion, KeyState: in.KeyState}}
	if _, err := ps.s.records.Sign(ctx, c, req, cer); err != nil {
		ps.s.ceremonyEvents(x, c, err)
		return pageErr(err)
	}
	return nil
}

// exchangeFrom returns the exchange of the request whose context ctx is.
func exchangeFrom(ctx context.Context) *exchange {
	if x, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return x
	}
	return &exchange{}
}

// pageErr maps a records error to the one the pages show, by the status
// $sign would answer: not allowed to see answers as not there.
func pageErr(err error) error {
	if err == nil || errors.Is(err, signin.ErrSignNotFound) {
		return err
	}
	var base error
	switch code, _ := status(err); code {
	case http.StatusNotFound, http.StatusGone:
		base = signin.ErrSignNotFound
	case http.StatusForbidden:
		base = signin.ErrSignForbidden
	case http.StatusBadRequest:
		base = signin.ErrSignInvalid
	case http.StatusUnauthorized:
		base = signin.ErrSignCeremony
	case http.StatusTooManyRequests:
		base = signin.ErrSignThrottled
	default:
		return err
	}
	return fmt.Errorf("%w: %w", base, err)
}
