package api

import (
	"net/http"
	"strconv"
	"time"
)

// throttledError refuses a request for being over a limit: a rate limit
// (package ratelimit) or a credential's throttle. status answers it with
// 429; writeError adds Retry-After. Whoever refuses sets the RateLimit
// fields (draft-ietf-httpapi-ratelimit-headers-11) that say why.
type throttledError struct {
	retryAfter time.Duration
	policy     string // the limit's policy name, for metrics
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
}
