package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/auth/federation"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// WithFederation makes Verify accept access tokens from the external
// OpenID providers v is configured with. Ward's own tokens are told apart
// by their exact protected header and never reach v; a token that is not
// Ward's goes to v, whose failures are 401s like any other. When an
// issuer's keys cannot be had, the error also wraps ErrIssuerUnavailable.
func (s *Server) WithFederation(v *federation.Verifier) *Server {
	s.fed = v
	return s
}

// Federation returns the verifier WithFederation set, or nil: package
// signin offers sign-ins through its issuers that have a client id.
func (s *Server) Federation() *federation.Verifier { return s.fed }

// ErrIssuerUnavailable: an external issuer's keys could not be fetched.
var ErrIssuerUnavailable = errors.New("auth: external issuer unavailable")

// ownHeader reports whether a token carries one of the protected headers
// Ward signs with.
func (s *Server) ownHeader(bearer string) bool {
	hdr, _, _ := strings.Cut(bearer, ".")
	_, ok := s.keyFor(hdr)
	return ok
}

// verifyFederated verifies an external provider's access token and maps
// its identity to a Principal. The people and apps of external providers
// need not be in Ward's store: the provider vouches for them, within the
// token's lifetime. A person who signed in to Ward's pages through the
// provider has a shadow user (Users.Federated); once it is disabled, or
// its tokens cut off (NotBefore), the provider's tokens stop working too.
func (s *Server) verifyFederated(ctx context.Context, bearer string) (Principal, error) {
	if len(bearer) > maxTokenLen {
		return Principal{}, fmt.Errorf("%w: token too long", ErrInvalidToken)
	}
	id, err := s.fed.Verify(ctx, bearer)
	if err != nil {
		if errors.Is(err, federation.ErrKeysUnavailable) {
			return Principal{}, fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrIssuerUnavailable, err)
		}
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := s.shadowActive(ctx, id); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	p := Principal{
		ClientID: id.ClientID, Subject: id.UserID, TokenID: id.TokenID, Scopes: id.Scopes, Expiry: id.Expiry,
		UserID: id.UserID, Role: id.Role, FHIRUser: id.FHIRUser, ACR: id.ACR, AMR: id.AMR,
		AuthTime: id.AuthTime, MFATime: id.MFATime,
	}
	// A patient's own record is the launch context patient/ scopes reach.
	if typ, pid, ok := strings.Cut(id.FHIRUser, "/"); ok && typ == "Patient" && id.Role == policy.RolePatient {
		p.Patient = pid
	}
	return p, nil
}

// shadowActive refuses an external token whose person has a shadow user
// that is disabled or cut off tokens issued before the token's iat,
// reading the store at most once per ClientCacheTTL per person.
func (s *Server) shadowActive(ctx context.Context, id federation.Identity) error {
	if s.people == nil || id.UserID == "" {
		return nil
	}
	now := s.cfg.Now()
	key := "shadow:" + id.UserID + ":" + strconv.FormatInt(id.IssuedAt.Unix(), 10)
	if s.cache != nil {
		if active, ok := s.cache.get(key, now); ok {
			if !active {
				return errors.New("auth: external user disabled in Ward")
			}
			return nil
		}
	}
	u, err := s.people.User(ctx, id.UserID)
	active := true
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("auth: load external user: %w", err)
	default:
		active = !u.Disabled && !id.IssuedAt.Before(u.NotBefore)
	}
	if s.cache != nil {
		s.cache.put(key, active, now)
	}
	if !active {
		return errors.New("auth: external user disabled in Ward")
	}
	return nil
}
