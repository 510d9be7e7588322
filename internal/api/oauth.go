package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/signin"
)

// token is the OAuth2 token endpoint (RFC 6749 section 4.4, client
// credentials). Errors follow RFC 6749 section 5.2, not OperationOutcome.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if s.signin != nil && personGrant(r) {
		s.personToken(w, r)
		return
	}
	req, err := auth.ParseTokenRequest(r)
	if err == nil {
		exchangeOf(r).caller.ClientID = req.ClientID // as claimed; the outcome says whether it was proven
		var resp auth.TokenResponse
		resp, err = s.auth.Token(r.Context(), req)
		if err == nil {
			body, _ := json.Marshal(resp)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Pragma", "no-cache")
			_, _ = w.Write(body)
			return
		}
	}
	var oe *auth.OAuthError
	if !errors.As(err, &oe) {
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

// smartConfiguration is the SMART App Launch 2.0 discovery document.
func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	b := s.cfg.BaseURL
	doc := map[string]any{
		"issuer":                                b,
		"jwks_uri":                              b + "/oauth2/jwks",
		"token_endpoint":                        b + "/oauth2/token",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"system/*.cruds", "system/*.rs"},
		"capabilities":                          []string{"client-confidential-symmetric", "permission-v1", "permission-v2"},
	}
	if s.signin != nil {
		doc["authorization_endpoint"] = b + signin.PathAuthorize
		doc["introspection_endpoint"] = b + signin.PathIntrospec
		doc["revocation_endpoint"] = b + signin.PathRevoke
		doc["userinfo_endpoint"] = b + signin.PathUserinfo
		doc["grant_types_supported"] = []string{"authorization_code", "refresh_token", "client_credentials"}
		doc["token_endpoint_auth_methods_supported"] = []string{"client_secret_basic", "client_secret_post", "none"}
		doc["response_types_supported"] = []string{"code"}
		doc["code_challenge_methods_supported"] = []string{"S256"}
		doc["scopes_supported"] = []string{"openid", "fhirUser", "profile", "offline_access", "online_access", "launch/patient",
			"patient/*.cruds", "patient/*.rs", "user/*.cruds", "user/*.rs", "system/*.cruds", "system/*.rs"}
		doc["capabilities"] = []string{"launch-standalone", "client-public", "client-confidential-symmetric",
			"context-standalone-patient", "sso-openid-connect", "permission-offline", "permission-online",
			"permission-patient", "permission-user", "permission-v1", "permission-v2"}
	}
	body, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
