package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/wardhealth/ward/internal/signin"
)

// WithSignIn mounts the OpenID provider and its sign-in pages: the
// authorization, userinfo, revocation, introspection and logout endpoints,
// discovery, and the token endpoint's authorization_code and refresh_token
// grants (client_credentials stays with package auth).
func (s *Server) WithSignIn(p *signin.Provider) *Server {
	s.signin = p.WithESign(pageSigning{s: s})
	s.meta = s.capabilityStatement()
	s.handle("/admin/users", http.HandlerFunc(s.adminUsers))
	s.handle("/admin/users/", http.HandlerFunc(s.adminUsers))
	for _, path := range []string{signin.PathSignIn, signin.PathSignIn + "/", signin.PathAuthorize, signin.PathAuthorize + "/callback",
		signin.PathUserinfo, signin.PathRevoke, signin.PathIntrospec, signin.PathLogout, signin.PathDiscovery} {
		s.handle(path, p)
	}
	return s
}

// applySignIn folds the sign-in events the provider added while handling
// the request into its exchange, oldest first: the provider reports into
// a list of its own (signin.Events) and the entry is written from here.
func applySignIn(x *exchange) {
	for _, e := range x.signIn.List() {
		if e.Client != "" {
			x.caller.ClientID = e.Client // registered (signin.Event)
		}
		if e.Action == "" {
			continue
		}
		x.action = e.Action
		x.account, x.username = e.Account, e.Username
		if e.UserID != "" {
			x.user = e.UserID
		}
		x.detail = e.Detail
		if e.Patient != "" {
			x.patient = e.Patient
		}
	}
}

// personGrant reports whether a token request is for the OpenID provider.
func personGrant(r *http.Request) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return false
	}
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return false
	}
	switch form.Get("grant_type") {
	case "authorization_code", "refresh_token":
		return true
	}
	return false
}

// personToken answers the authorization_code and refresh_token grants
// through the OpenID provider, adding the SMART launch context (patient)
// to a successful response: the provider's response has no place for it,
// and the access token it just signed carries it.
func (s *Server) personToken(w http.ResponseWriter, r *http.Request) {
	buf := &bufferedResponse{header: http.Header{}}
	s.signin.ServeHTTP(buf, r)
	body := buf.body.Bytes()
	if buf.status == 0 {
		buf.status = http.StatusOK
	}
	if buf.status == http.StatusOK {
		var resp map[string]any
		if json.Unmarshal(body, &resp) == nil {
			if at, _ := resp["access_token"].(string); at != "" {
				if p, err := s.auth.Verify(r.Context(), at); err == nil {
					exchangeOf(r).user = p.UserID
					if p.Patient != "" {
						resp["patient"] = p.Patient
						body, _ = json.Marshal(resp)
					}
				}
			}
		}
	}
	h := w.Header()
	for k, v := range buf.header {
		h[k] = v
	}
	h.Del("Content-Length")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(buf.status)
	_, _ = w.Write(body)
}

// bufferedResponse holds a handler's response so it can be amended.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// signInPath reports whether a path belongs to signing in or to the OAuth2
// endpoints, but for the pages' static files and public documents.
func signInPath(path string) bool {
	if !Audited(path) {
		return false
	}
	return signin.Handles(path) || strings.HasPrefix(path, "/oauth2/")
}
