package api

import (
	"net/http"
	"strconv"
	"time"
)

// throttledError refuses a request for being over a limit: a rate limit
// (package ratelimit) or a credential's throttle. status answers it with
// 429; writeError adds Retry-After and the RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers-11) it carries.
type throttledError struct {
	retryAfter time.Duration
	policy     string // the RateLimit-Policy field value, or ""
	field      string // the RateLimit field value
}

func (e *throttledError) Error() string {
	return "api: too many requests; retry after " + e.retryAfter.String()
}

// seconds is the Retry-After delay: whole seconds, rounded up, at least 1.
func (e *throttledError) seconds() int64 {
	s := int64((e.retryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// header sets the fields of a 429 answer.
func (e *throttledError) header(h http.Header) {
	h.Set("Retry-After", strconv.FormatInt(e.seconds(), 10))
	if e.policy != "" {
		h.Set("RateLimit-Policy", e.policy)
	}
	if e.field != "" {
		h.Set("RateLimit", e.field)
	}
}
