package webhook

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// EventAuth is how an Auth0 Event Streams webhook destination authenticates
// to the events endpoint: a bearer token, basic auth, or a custom header with
// a shared value. A request is admitted when any configured method matches.
// The zero value configures none and admits nothing.
type EventAuth struct {
	// BearerToken, if not empty, admits "Authorization: Bearer <token>".
	BearerToken string
	// BasicUser and BasicPassword, if set (both), admit HTTP basic auth.
	BasicUser, BasicPassword string
	// HeaderName and HeaderValue, if set (both), admit a request whose
	// header HeaderName has exactly the value HeaderValue.
	HeaderName, HeaderValue string
}

// Configured reports whether at least one method is configured.
func (a EventAuth) Configured() bool {
	return a.BearerToken != "" || a.BasicUser != "" || a.BasicPassword != "" || a.HeaderName != "" || a.HeaderValue != ""
}

// Methods names the configured methods, for logs: "bearer", "basic",
// "header <name>".
func (a EventAuth) Methods() []string {
	var out []string
	if a.BearerToken != "" {
		out = append(out, "bearer")
	}
	if a.BasicUser != "" {
		out = append(out, "basic")
	}
	if a.HeaderName != "" {
		out = append(out, "header "+http.CanonicalHeaderKey(a.HeaderName))
	}
	return out
}

// Validate reports a half-configured method. Its errors name the fields and
// never show a secret.
func (a EventAuth) Validate() error {
	var errs []error
	if (a.BasicUser == "") != (a.BasicPassword == "") {
		errs = append(errs, errors.New("basic auth needs both a user and a password"))
	}
	if strings.Contains(a.BasicUser, ":") {
		errs = append(errs, errors.New("the basic auth user must not contain ':'"))
	}
	if (a.HeaderName == "") != (a.HeaderValue == "") {
		errs = append(errs, errors.New("header auth needs both a header name and a value"))
	}
	if a.HeaderName != "" && !validHeaderName(a.HeaderName) {
		errs = append(errs, errors.New("the auth header name is not a valid HTTP header name"))
	}
	if a.HeaderValue != "" && !validHeaderValue(a.HeaderValue) {
		errs = append(errs, errors.New("the auth header value contains characters an HTTP header cannot carry"))
	}
	return errors.Join(errs...)
}

// admits reports whether r carries a configured credential. Every
// comparison hashes both sides first and compares in constant time, so that
// neither the value nor its length leaks through timing.
func (a EventAuth) admits(r *http.Request) bool {
	ok := 0
	if a.BearerToken != "" {
		if scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " "); found && strings.EqualFold(scheme, "Bearer") {
			ok |= equalSecret(strings.TrimSpace(token), a.BearerToken)
		}
	}
	if a.BasicUser != "" && a.BasicPassword != "" {
		if user, pass, found := r.BasicAuth(); found {
			ok |= equalSecret(user, a.BasicUser) & equalSecret(pass, a.BasicPassword)
		}
	}
	if a.HeaderName != "" && a.HeaderValue != "" {
		if vs := r.Header.Values(a.HeaderName); len(vs) == 1 {
			ok |= equalSecret(vs[0], a.HeaderValue)
		}
	}
	return ok == 1
}

// challenge returns the WWW-Authenticate values for a 401.
func (a EventAuth) challenge() []string {
	var out []string
	if a.BearerToken != "" {
		out = append(out, `Bearer realm="orgconn"`)
	}
	if a.BasicUser != "" {
		out = append(out, `Basic realm="orgconn", charset="UTF-8"`)
	}
	return out
}

// equalSecret compares SHA-256 digests of got and want in constant time; it
// returns 1 when equal, else 0.
func equalSecret(got, want string) int {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:])
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as a header value: visible
// ASCII, spaces and tabs, without surrounding white space.
func validHeaderValue(s string) bool {
	if strings.TrimSpace(s) != s {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
