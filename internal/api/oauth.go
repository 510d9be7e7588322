package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/signin"
	"github.com/wardhealth/ward/internal/store"
)

// token is the OAuth2 token endpoint (RFC 6749 section 4.4, client
// credentials). Errors follow RFC 6749 section 5.2, not OperationOutcome.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if s.signin != nil && personGrant(r) {
		s.personToken(w, r)
		return
	}
	x := exchangeOf(r)
	req, err := auth.ParseTokenRequest(r)
	if err == nil {
		x.claimed = req.ClientID // recorded as a keyed hash unless found registered below
		var resp auth.TokenResponse
		resp, err = s.auth.Token(r.Context(), req)
		if err == nil {
			x.caller.ClientID = resp.ClientID // proven
			body, _ := json.Marshal(resp)     // #nosec G117 -- the token endpoint's answer is the access token (RFC 6749 5.1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Pragma", "no-cache")
			_, _ = w.Write(body)
			return
		}
	}
	var te *auth.ThrottledError
	if errors.As(err, &te) {
		// The client id's secret failed too often: refused unchecked,
		// for known and unknown ids alike.
		exchangeOf(r).detail = "throttled"
		w.Header().Add("RateLimit", secretField(te.RetryAfter))
		s.writeError(w, r, &throttledError{retryAfter: te.RetryAfter, policy: "client-secret"})
		return
	}
	var oe *auth.OAuthError
	if errors.As(err, &oe) && oe.Client != "" {
		x.caller.ClientID = oe.Client // registered, though not proven here
	}
	if errors.Is(err, auth.ErrClientLocked) {
		// The log names a registered client by its id and any other id
		// tried only by its pseudonym, as the ledger does: never as sent.
		id := x.caller.ClientID
		if id == "" {
			id = s.cfg.Pseudonyms.Sum(pseudoClient, x.claimed)
		}
		x.detail = "locked"
		e := secevent.New(secevent.ClientThrottled, s.cfg.Now())
		e.Client, e.Source, e.Outcome = id, x.caller.Source, secevent.Failure
		s.emit(e.With(secevent.AttrRequestID, requestID(r.Context())))
	}
	if !errors.As(err, &oe) && errors.Is(err, store.ErrUnavailable) {
		rid := requestID(r.Context())
		s.log.LogAttrs(r.Context(), slog.LevelError, "token request failed", slog.String("request_id", rid), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "1")
		oe = &auth.OAuthError{Code: "temporarily_unavailable", Description: "request " + rid + " failed; retry later", Status: http.StatusServiceUnavailable}
	}
	if oe == nil {
		rid := requestID(r.Context())
		s.log.LogAttrs(r.Context(), slog.LevelError, "token request failed", slog.String("request_id", rid), slog.String("error", err.Error()))
		oe = &auth.OAuthError{Code: "server_error", Description: "request " + rid + " failed", Status: http.StatusInternalServerError}
	}
	if oe.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="ward"`)
	}
	body, _ := json.Marshal(map[string]string{"error": oe.Code, "error_description": oe.Description})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(oe.Status)
	_, _ = w.Write(body)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(s.auth.JWKS())
}

// smartConfiguration is the SMART App Launch 2.0 discovery document, with
// the RFC 8414 and RFC 8705 members for service authentication.
func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	b := s.cfg.BaseURL
	// How services authenticate at the token endpoint.
	serviceAuth := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	if s.cfg.ClientCerts {
		serviceAuth = append(serviceAuth, "self_signed_tls_client_auth")
	}
	doc := map[string]any{
		"issuer":                                b,
		"jwks_uri":                              b + "/oauth2/jwks",
		"token_endpoint":                        b + "/oauth2/token",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": serviceAuth,
		"token_endpoint_auth_signing_alg_values_supported": auth.AssertionAlgorithms(),
		"scopes_supported": []string{"system/*.cruds", "system/*.rs", "system/AuditEvent.rs"},
		"capabilities":     []string{"client-confidential-symmetric", "client-confidential-asymmetric", "permission-v1", "permission-v2"},
	}
	if s.cfg.ClientCerts {
		doc["tls_client_certificate_bound_access_tokens"] = true
	}
	if s.signin != nil {
		doc["authorization_endpoint"] = b + signin.PathAuthorize
		doc["introspection_endpoint"] = b + signin.PathIntrospec
		doc["revocation_endpoint"] = b + signin.PathRevoke
		doc["userinfo_endpoint"] = b + signin.PathUserinfo
		doc["grant_types_supported"] = []string{"authorization_code", "refresh_token", "client_credentials"}
		doc["token_endpoint_auth_methods_supported"] = append(serviceAuth, "none")
		doc["response_types_supported"] = []string{"code"}
		doc["code_challenge_methods_supported"] = []string{"S256"}
		doc["scopes_supported"] = []string{"openid", "fhirUser", "profile", "offline_access", "online_access", "launch/patient",
			"patient/*.cruds", "patient/*.rs", "user/*.cruds", "user/*.rs", "user/AuditEvent.rs", "system/*.cruds", "system/*.rs", "system/AuditEvent.rs"}
		doc["capabilities"] = []string{"launch-standalone", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
			"context-standalone-patient", "sso-openid-connect", "permission-offline", "permission-online",
			"permission-patient", "permission-user", "permission-v1", "permission-v2"}
	}
	body, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// secretField is the RateLimit field of a client id whose secret attempts
// are throttled: none left until the lock ends. The throttle is no quota,
// so no RateLimit-Policy describes it.
func secretField(retryAfter time.Duration) string {
	e := throttledError{retryAfter: retryAfter}
	return `"client-secret";r=0;t=` + strconv.FormatInt(e.seconds(), 10)
}
