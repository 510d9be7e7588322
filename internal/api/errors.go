package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// Errors raised by the HTTP layer itself.
var (
	errUnauthenticated = errors.New("api: authentication required")
	errNotFound        = errors.New("api: no such route")
	errMethod          = errors.New("api: method not allowed")
	errMediaType       = errors.New("api: unsupported media type")
	errNotAcceptable   = errors.New("api: not acceptable")
	errTooLarge        = errors.New("api: request body too large")
	errBadRequest      = errors.New("api: bad request")
	errForbidden       = errors.New("api: forbidden")
	errReadOnly        = errors.New("api: read-only")
)

// status maps an error to its HTTP status and the issues the caller may
// see. It is the only place that does; anything unknown is a 500 whose body
// carries nothing but the request id.
func status(err error) (int, []fhir.Issue) {
	var (
		fe *fhir.Error
		qe *search.QueryError
		oe *auth.OAuthError
		te *throttledError
	)
	switch {
	case errors.As(err, &te):
		return http.StatusTooManyRequests, []fhir.Issue{issue("throttled", "too many requests: retry after "+strconv.FormatInt(te.seconds(), 10)+" s")}
	case errors.As(err, &fe):
		return http.StatusBadRequest, fe.Issues
	case errors.As(err, &qe):
		return http.StatusBadRequest, []fhir.Issue{issue("invalid", qe.Diagnostics())}
	case errors.As(err, &oe):
		return oe.Status, []fhir.Issue{issue("security", oe.Description)}
	case errors.Is(err, store.ErrUnavailable):
		// Before the 401: a token whose client or user could not be
		// looked up is not known to be invalid (auth wraps both).
		return http.StatusServiceUnavailable, []fhir.Issue{issue("transient", "the service is temporarily unavailable; retry later")}
	case errors.Is(err, records.ErrStepUp):
		return http.StatusUnauthorized, []fhir.Issue{issue("login", "this interaction needs a second factor checked in the last 10 minutes: sign in again with it")}
	case errors.Is(err, records.ErrCeremony):
		return http.StatusUnauthorized, []fhir.Issue{issue("security", "the signing ceremony failed: ask for a new nonce, then enter your password and a new code from your authenticator app (or a new answer of your security key)")}
	case errors.Is(err, errUnauthenticated), errors.Is(err, auth.ErrInvalidToken):
		return http.StatusUnauthorized, []fhir.Issue{issue("login", "a valid bearer token is required")}
	case errors.Is(err, errReadOnly):
		return http.StatusForbidden, []fhir.Issue{issue("forbidden", "Ward is running read-only for an investigation of its audit ledger: nothing can be written")}
	case errors.Is(err, records.ErrForbidden), errors.Is(err, errForbidden):
		return http.StatusForbidden, []fhir.Issue{issue("forbidden", "the token does not permit this interaction")}
	case errors.Is(err, bulk.ErrBusy):
		return http.StatusTooManyRequests, []fhir.Issue{issue("throttled", "too many export jobs are running: retry later")}
	case errors.Is(err, incident.ErrInvalid):
		return http.StatusBadRequest, []fhir.Issue{issue("invalid", safeText(err))}
	case errors.Is(err, incident.ErrConflict):
		return http.StatusConflict, []fhir.Issue{issue("conflict", safeText(err))}
	case errors.Is(err, records.ErrNotFound), errors.Is(err, errNotFound), errors.Is(err, bulk.ErrNotFound), errors.Is(err, bulk.ErrNotReady),
		errors.Is(err, incident.ErrNotFound):
		return http.StatusNotFound, []fhir.Issue{issue("not-found", "not found")}
	case errors.Is(err, records.ErrGone):
		return http.StatusGone, []fhir.Issue{issue("deleted", "the resource has been deleted")}
	case errors.Is(err, records.ErrPrecondition):
		return http.StatusPreconditionFailed, []fhir.Issue{issue("conflict", safeText(err))}
	case errors.Is(err, records.ErrConflict):
		return http.StatusConflict, []fhir.Issue{issue("conflict", safeText(err))}
	case errors.Is(err, records.ErrInvalid), errors.Is(err, errBadRequest):
		return http.StatusBadRequest, []fhir.Issue{issue("invalid", safeText(err))}
	case errors.Is(err, records.ErrTooCostly):
		return http.StatusRequestEntityTooLarge, []fhir.Issue{issue("too-costly", safeText(err))}
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, []fhir.Issue{issue("too-costly", "the request body is too large")}
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, []fhir.Issue{issue("not-supported", "method not allowed")}
	case errors.Is(err, errMediaType):
		return http.StatusUnsupportedMediaType, []fhir.Issue{issue("not-supported", "send application/fhir+json")}
	case errors.Is(err, errNotAcceptable):
		return http.StatusNotAcceptable, []fhir.Issue{issue("not-supported", "Ward answers application/fhir+json only")}
	case errors.Is(err, records.ErrUnavailable):
		return http.StatusServiceUnavailable, []fhir.Issue{issue("transient", "the service is temporarily unavailable; retry later")}
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, []fhir.Issue{issue("timeout", "the request took too long")}
	}
	return http.StatusInternalServerError, nil
}

func issue(code, diag string) fhir.Issue {
	return fhir.Issue{Severity: fhir.SeverityError, Code: code, Diagnostics: diag}
}

// safeText is the caller-facing text of a records error. The records
// service builds these messages from element names, ids and limits only,
// never from resource content.
func safeText(err error) string {
	msg := err.Error()
	for {
		rest, ok := strings.CutPrefix(msg, "records: ")
		if !ok {
			rest, ok = strings.CutPrefix(msg, "incident: ")
		}
		if !ok {
			return msg
		}
		msg = rest
	}
}

// writeError answers with an OperationOutcome. 5xx causes are logged with
// the request id; the caller sees only the id.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, issues := status(err)
	if s.cfg.Metrics != nil {
		s.countRefusal(err, code)
	}
	rid := requestID(r.Context())
	if code >= 500 {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("request_id", rid), slog.Int("status", code), slog.String("error", err.Error()))
		kind := "transient"
		if code == http.StatusInternalServerError {
			kind = "exception"
		}
		issues = []fhir.Issue{issue(kind, "request "+rid+" failed")}
	}
	if te := (*throttledError)(nil); errors.As(err, &te) {
		te.header(w.Header())
	}
	if code == http.StatusUnauthorized {
		v := `Bearer realm="ward"`
		switch {
		case errors.Is(err, records.ErrStepUp):
			// RFC 9470: the token is valid, its authentication too old.
			v += `, error="insufficient_user_authentication", error_description="a recent second factor is required", max_age=` + strconv.Itoa(int(stepUpMaxAge.Seconds()))
		case r.Header.Get("Authorization") != "":
			v += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", v)
	}
	writeJSON(w, code, fhir.Outcome(issues...))
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", fhirJSON)
	w.WriteHeader(code)
	_, _ = w.Write(body) // #nosec G705 -- a FHIR JSON OperationOutcome served as application/fhir+json with nosniff and CSP default-src 'none'; no HTML context
}
