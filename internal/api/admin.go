package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/auth/credential"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/secevent"
)

// userView is a user as the admin API shows it: never a hash or secret.
type userView struct {
	ID       string    `json:"id"`
	Username string    `json:"username"`
	Role     string    `json:"role"`
	FHIRUser string    `json:"fhirUser,omitempty"`
	MFA      bool      `json:"mfa"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
}

func viewOf(u auth.User) userView {
	return userView{ID: u.ID, Username: u.Username, Role: u.Role, FHIRUser: u.FHIRUser, MFA: auth.HasMFA(u), Disabled: u.Disabled, Created: u.Created}
}

// adminUsers is the admin API for people's accounts:
//
//	GET  /admin/users                    list
//	POST /admin/users                    create {username, role, fhirUser, password}
//	POST /admin/users/{id}/disable       disable (ends sessions, stops tokens)
//	POST /admin/users/{id}/enable        enable
//	POST /admin/users/{id}/reset-mfa     remove the second factor
//
// Only a person with the admin role, signed in with a second factor, may
// call it (policy.DecideAdmin).
func (s *Server) adminUsers(w http.ResponseWriter, r *http.Request) {
	x := exchangeOf(r)
	x.typ = "User"
	c, err := s.authenticate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/users"), "/")
	id, op, _ := strings.Cut(rest, "/")
	x.id = id
	action := policy.AdminChangeUser
	switch {
	case rest == "" && r.Method == http.MethodGet:
		action, x.action = policy.AdminListUsers, "admin-list-users"
	case rest == "" && r.Method == http.MethodPost:
		action, x.action = policy.AdminCreateUser, "admin-create-user"
	case id != "" && r.Method == http.MethodPost && (op == "disable" || op == "enable" || op == "reset-mfa"):
		x.action = "admin-" + op
	case rest == "" || op == "" || op == "disable" || op == "enable" || op == "reset-mfa":
		s.writeError(w, r, errMethod)
		return
	default:
		s.writeError(w, r, errNotFound)
		return
	}
	if d := policy.DecideAdmin(c.Subject, x.mfa, action); !d.Allow {
		x.detail = d.Reason
		s.writeError(w, r, errForbidden)
		return
	}
	if _, err := fixedParams(r); err != nil { // the admin API takes no parameters
		s.writeError(w, r, err)
		return
	}
	users := s.signin.Users()
	ctx := r.Context()
	switch action {
	case policy.AdminListUsers:
		all, err := users.List(ctx)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]userView, 0, len(all))
		for _, u := range all {
			out = append(out, viewOf(u))
		}
		writeValue(w, http.StatusOK, out)
	case policy.AdminCreateUser:
		var in struct {
			Username string `json:"username"`
			Role     string `json:"role"`
			FHIRUser string `json:"fhirUser"`
			Password string `json:"password"`
		}
		if r.Header.Get("Content-Type") != "" {
			if _, err := bodyMediaType(r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || !utf8.Valid(body) {
			s.writeError(w, r, errBadRequest)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			s.writeError(w, r, errBadRequest)
			return
		}
		u, err := users.Create(ctx, auth.NewUser{Username: in.Username, Role: in.Role, FHIRUser: in.FHIRUser, Password: in.Password})
		if err != nil {
			s.writeError(w, r, userError(err))
			return
		}
		x.id = u.ID
		s.accountChanged(x, u.ID, "created", u.Role)
		writeValue(w, http.StatusCreated, viewOf(u))
	default:
		switch op {
		case "disable", "enable":
			err = users.SetDisabled(ctx, id, op == "disable")
		case "reset-mfa":
			err = users.RemoveMFA(ctx, id)
		}
		if err != nil {
			s.writeError(w, r, userError(err))
			return
		}
		s.accountChanged(x, id, map[string]string{"disable": "disabled", "enable": "enabled", "reset-mfa": "mfa-removed"}[op], "")
		u, err := users.User(ctx, id)
		if err != nil {
			s.writeError(w, r, userError(err))
			return
		}
		writeValue(w, http.StatusOK, viewOf(u))
	}
}

// accountChanged raises account.changed for a change made through the
// admin API.
func (s *Server) accountChanged(x *exchange, user, change, role string) {
	e := secevent.New(secevent.AccountChanged, s.cfg.Now())
	e.Actor, e.Client, e.Source, e.Outcome = x.user, x.caller.ClientID, x.caller.Source, secevent.Success
	e.Attrs = map[string]string{secevent.AttrUser: user, secevent.AttrChange: change, secevent.AttrRequestID: x.caller.RequestID}
	if role != "" {
		e.Attrs[secevent.AttrRole] = role
	}
	s.emit(e)
}

// userError maps user management errors to what the caller may see: the
// policy's messages name rules, never the password.
func userError(err error) error {
	switch {
	case errors.Is(err, auth.ErrUnknownUser):
		return errNotFound
	case errors.Is(err, auth.ErrBadUser), errors.Is(err, credential.ErrPasswordTooShort), errors.Is(err, credential.ErrPasswordTooLong),
		errors.Is(err, credential.ErrPasswordBreached), errors.Is(err, credential.ErrPasswordNotUTF8):
		return badRequestf(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "auth: "), "credential: "))
	}
	return err
}

func writeValue(w http.ResponseWriter, code int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
