package mgmt

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is what the X-RateLimit-* headers of one response said. Which
// bucket they describe (the API-wide one or the endpoint's) is not
// documented.
type RateLimit struct {
	Present   bool      // all three headers were there and parsed
	Limit     int       // X-RateLimit-Limit: the bucket's size
	Remaining int       // X-RateLimit-Remaining
	Reset     time.Time // X-RateLimit-Reset, a UNIX time in seconds
}

// ParseRateLimit reads the X-RateLimit-* headers. Missing or malformed
// headers give a RateLimit with Present false.
func ParseRateLimit(h http.Header) RateLimit {
	limit, err1 := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit")))
	remaining, err2 := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining")))
	reset, err3 := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || limit < 0 || remaining < 0 || reset < 0 {
		return RateLimit{}
	}
	return RateLimit{Present: true, Limit: limit, Remaining: remaining, Reset: time.Unix(reset, 0)}
}

// maxRetryAfter is the longest Retry-After honoured; a longer one is
// unusable.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header (delay in seconds or an HTTP
// date) relative to now. Zero means absent or unusable: not positive, not a
// number (NaN), or more than a day away.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		// Written so that NaN, which fails every comparison, is refused too.
		if !(secs > 0 && secs <= maxRetryAfter.Seconds()) {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) && t.Sub(now) <= maxRetryAfter {
		return t.Sub(now)
	}
	return 0
}

// APIError is a response from the Management API with a status other than
// the call's success status. Classify it by Status (and ErrorCode when
// present), or by Cause on the newer Organization connections calls, never by
// Message: Cause is the one place that reads the message, and only to tell
// apart 404s that the status alone cannot.
type APIError struct {
	Method     string
	Path       string // request path, without query
	Status     int
	Reason     string // the body's "error", e.g. "Not Found"
	ErrorCode  string // the body's "errorCode"; often missing on 404s
	Message    string // the body's "message", cut to 200 characters
	RateLimit  RateLimit
	RetryAfter time.Duration // from a Retry-After header; zero when absent
	// Cause is what the refusal is about, set by the calls on the newer Organization
	// connections endpoints (see Cause); CauseUnknown for the legacy calls.
	Cause Cause
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.Path, e.Status)
	if e.Reason != "" {
		b.WriteString(" " + e.Reason)
	} else if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.ErrorCode != "" {
		b.WriteString(" (" + e.ErrorCode + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// NetworkError is a call that got no HTTP response: the connection failed,
// was dropped, or the request timed out. A write may or may not have been
// applied.
type NetworkError struct {
	Method string
	Path   string
	Err    error
}

func (e *NetworkError) Error() string {
	return fmt.Sprintf("%s %s: no response: %v", e.Method, e.Path, e.Err)
}

func (e *NetworkError) Unwrap() error { return e.Err }

// TokenError is a failure to get a Management API token.
type TokenError struct {
	Status int    // HTTP status from the token endpoint; 0 when it did not answer
	Reason string // the OAuth "error" and "error_description", or the transport error
	// RetryAfter, on a 429, is how long the token endpoint asks to wait:
	// Retry-After when given, else until X-RateLimit-Reset; 0 when the
	// answer said neither.
	RetryAfter time.Duration
	Err        error
}

// Throttled reports whether the token endpoint refused for its rate limit
// (429): the fetch may succeed after RetryAfter, and nothing about the
// change is wrong.
func (e *TokenError) Throttled() bool { return e.Status == http.StatusTooManyRequests }

func (e *TokenError) Error() string {
	if e.Status == 0 {
		return "get Management API token: " + e.Reason
	}
	return fmt.Sprintf("get Management API token: %d: %s", e.Status, e.Reason)
}

func (e *TokenError) Unwrap() error { return e.Err }

// StatusOf returns the HTTP status carried by err (an *APIError or
// *TokenError), or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	var te *TokenError
	if errors.As(err, &te) {
		return te.Status
	}
	return 0
}
