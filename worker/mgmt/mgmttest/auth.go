package mgmttest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// token is an issued access token. It is guarded by Server.mu.
type token struct {
	scopes  []string
	expires time.Time
	revoked bool // set by ExpireTokens
}

// maxTokenRequest bounds the body of /oauth/token.
const maxTokenRequest = 64 << 10

// newTokenString returns 32 random bytes from crypto/rand, base64url-encoded: opaque and
// unguessable, like a real bearer token as far as a client can tell.
func newTokenString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b)
}

// issueLocked records and returns a new token. Called with s.mu held.
func (s *Server) issueLocked(scopes []string, ttl time.Duration) string {
	if ttl <= 0 {
		ttl = s.cfg.TokenTTL
	}
	tok := newTokenString()
	s.tokens[tok] = token{scopes: slices.Clone(scopes), expires: s.now().Add(ttl)}
	return tok
}

// IssueToken returns a bearer token granting exactly scopes (none when empty) that expires ttl
// after Config.Now (0 or less means Config.TokenTTL). It is for tests that use a static token;
// it is not counted in Stats.TokensIssued.
func (s *Server) IssueToken(scopes []string, ttl time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(scopes, ttl)
}

// ExpireTokens makes every token issued so far, by /oauth/token or IssueToken, expired: using
// one gets 401 "Expired token received for JSON Web Token validation". Tokens issued afterwards
// are valid.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.tokens {
		t.revoked = true
		s.tokens[k] = t
	}
}

// authorize checks the request's bearer token and that it grants scope, returning the 401 or
// 403 to send when it does not. Called with s.mu held.
func (s *Server) authorize(header, scope string, now time.Time) (result, bool) {
	scheme, tok, found := strings.Cut(header, " ")
	tok = strings.TrimSpace(tok)
	if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return fail(http.StatusUnauthorized, "Missing authentication", ""), false
	}
	t, known := s.tokens[tok]
	if !known {
		return fail(http.StatusUnauthorized, "Invalid token", ""), false
	}
	if t.revoked || !now.Before(t.expires) {
		return fail(http.StatusUnauthorized, "Expired token received for JSON Web Token validation", ""), false
	}
	if !slices.Contains(t.scopes, scope) {
		return fail(http.StatusForbidden, "Insufficient scope; expected any of: "+scope, codeInsufficientScope), false
	}
	return result{}, true
}

// oauthError is the body of a /oauth/token error, shaped like Auth0's.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenResponse is the body of a successful /oauth/token answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// serveToken implements POST /oauth/token for the client-credentials grant. With a limiting
// Config.TokenLimit every answer carries X-RateLimit-* headers describing that bucket, and a
// request that finds it empty gets a 429 before anything else is checked (with Retry-After
// when Config.RetryAfter).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	now := s.now()
	allowed := s.tokenLimit.take(now)
	hdr := s.tokenLimit.headers(now, s.cfg.ResetMeaning, false)
	var retry time.Duration
	if !allowed {
		s.stats.TokensThrottled++
		if s.cfg.RetryAfter {
			retry = s.tokenLimit.retryAfter(now)
		}
	}
	s.mu.Unlock()
	hdr.Apply(w.Header())
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(retry/time.Second), 10))
	}
	if !allowed {
		// Auth0's Authentication API errors are {"error","error_description"}; its rate-limit
		// code is too_many_requests (the description is not documented for /oauth/token).
		writeJSON(w, http.StatusTooManyRequests, oauthError{codeTooManyRequests, "Global limit has been reached"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, oauthError{"invalid_request", "Method " + r.Method + " is not allowed on /oauth/token; use POST"})
		return
	}
	params, problem := readTokenParams(r)
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", problem})
		return
	}
	if id, secret, ok := r.BasicAuth(); ok && params["client_id"] == "" {
		params["client_id"], params["client_secret"] = id, secret
	}
	switch gt := params["grant_type"]; gt {
	case "client_credentials":
	case "":
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "Missing required parameter: grant_type"})
		return
	default:
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "Unsupported grant type: " + gt})
		return
	}
	if !equalSecret(params["client_id"], s.cfg.ClientID) || !equalSecret(params["client_secret"], s.cfg.ClientSecret) {
		writeJSON(w, http.StatusUnauthorized, oauthError{"access_denied", "Unauthorized"})
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if aud := params["audience"]; aud != scheme+"://"+r.Host+"/api/v2/" {
		writeJSON(w, http.StatusForbidden, oauthError{"access_denied", "Service not enabled within domain: " + aud})
		return
	}
	granted := s.cfg.Scopes
	if requested := strings.Fields(params["scope"]); len(requested) > 0 {
		var missing []string
		for _, sc := range requested {
			if !slices.Contains(s.cfg.Scopes, sc) {
				missing = append(missing, sc)
			}
		}
		if len(missing) > 0 {
			writeJSON(w, http.StatusForbidden, oauthError{"access_denied", "Client has not been granted scopes: " + strings.Join(missing, ", ")})
			return
		}
		granted = nil
		for _, sc := range requested {
			if !slices.Contains(granted, sc) {
				granted = append(granted, sc)
			}
		}
	}

	s.mu.Lock()
	tok := s.issueLocked(granted, s.cfg.TokenTTL)
	s.stats.TokensIssued++
	s.mu.Unlock()

	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.cfg.TokenTTL / time.Second),
		Scope:       strings.Join(granted, " "),
	})
}

// readTokenParams reads a form or JSON /oauth/token body into a map, or returns what is wrong
// with it.
func readTokenParams(r *http.Request) (map[string]string, string) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenRequest+1))
	if err != nil {
		return nil, "Could not read the request body: " + err.Error()
	}
	if len(body) > maxTokenRequest {
		return nil, "Request body is larger than 64 KiB"
	}
	params := make(map[string]string)
	switch mt {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, "Malformed form body: " + err.Error()
		}
		for k, v := range form {
			params[k] = v[0]
		}
	case "application/json":
		var raw map[string]any
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, "Malformed JSON body: an object of string parameters is required"
		}
		for k, v := range raw {
			str, isString := v.(string)
			if !isString {
				return nil, "Parameter " + k + " must be a string"
			}
			params[k] = str
		}
	default:
		return nil, "Content-Type must be application/x-www-form-urlencoded or application/json"
	}
	return params, ""
}

func equalSecret(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
