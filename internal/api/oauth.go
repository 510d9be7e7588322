package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/wardhealth/ward/internal/auth"
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

// smartConfiguration is the SMART App Launch discovery document.
func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	doc := map[string]any{
		"issuer":                                s.cfg.BaseURL,
		"jwks_uri":                              s.cfg.BaseURL + "/oauth2/jwks",
		"token_endpoint":                        s.cfg.BaseURL + "/oauth2/token",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"system/*.cruds", "system/*.rs"},
		"capabilities":                          []string{"client-confidential-symmetric"},
	}
	body, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
