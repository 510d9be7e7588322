package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/records"
)

// Observer receives the HTTP layer's measurements (metrics.Metrics is
// one). route is the router's pattern, never the request's path: no id
// reaches it. Its methods must be quick and safe for concurrent use.
type Observer interface {
	Request(route, method string, code int, took time.Duration)
	// RateLimited: a request refused by the named limit policy.
	RateLimited(policy string)
	// ValidationFailed: a request refused because the resource or query
	// it sent was invalid.
	ValidationFailed()
}

// statusWriter remembers the status code that left.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.code == 0 {
			w.code = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe reports a finished request. r is the request the router saw:
// ServeMux sets its Pattern. A request answered before routing (refused
// by a limit, malformed) is looked up in the route table without being
// served, so that it is counted under the route it asked for.
func (s *Server) observe(w *statusWriter, r *http.Request, began time.Time) {
	route := r.Pattern
	if route == "" {
		_, route = s.mux.Handler(r)
	}
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	s.cfg.Metrics.Request(route, r.Method, code, time.Since(began))
}

// countRefusal counts the refusals the metrics name: rate limits and
// invalid input.
func (s *Server) countRefusal(err error, code int) {
	var (
		te *throttledError
		fe *fhir.Error
		qe *search.QueryError
	)
	switch {
	case errors.As(err, &te):
		s.cfg.Metrics.RateLimited(te.policy)
	case code == http.StatusBadRequest && (errors.As(err, &fe) || errors.As(err, &qe) || errors.Is(err, records.ErrInvalid)):
		s.cfg.Metrics.ValidationFailed()
	}
}
