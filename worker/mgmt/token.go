package mgmt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenSource supplies Management API access tokens.
type TokenSource interface {
	// Token returns a token that is valid now.
	Token(ctx context.Context) (string, error)
	// Invalidate says that token was refused (401); the next Token call must
	// not return it. Tokens other than the given one are kept, so that many
	// goroutines seeing the same 401 cause one refresh, not many.
	Invalidate(token string)
}

// StaticToken is a fixed token (AUTH0_TOKEN). It cannot be refreshed.
type StaticToken string

// Token returns the token.
func (s StaticToken) Token(context.Context) (string, error) { return string(s), nil }

// Invalidate does nothing: a static token cannot be replaced.
func (StaticToken) Invalidate(string) {}

// ClientCredentials fetches tokens with the OAuth client-credentials grant
// from https://{domain}/oauth/token, caches the token, and fetches a new one
// shortly before it expires or after Invalidate. Concurrent callers share one
// fetch. Safe for concurrent use.
type ClientCredentials struct {
	tokenURL, audience string
	clientID, secret   string
	http               *http.Client
	userAgent          string
	now                func() time.Time
	refreshBefore      time.Duration
	mu                 sync.Mutex
	token              string
	expires            time.Time
	inflight           *fetch
	fetches            int
}

type fetch struct {
	done  chan struct{}
	token string
	err   error
}

// NewClientCredentials returns a token source for the tenant at baseURL (as
// returned by BaseURL). httpClient may be nil for a default with timeouts.
func NewClientCredentials(baseURL, clientID, clientSecret string, httpClient *http.Client) *ClientCredentials {
	if httpClient == nil {
		httpClient = defaultHTTPClient(30 * time.Second)
	}
	return &ClientCredentials{
		tokenURL:      baseURL + "/oauth/token",
		audience:      baseURL + "/api/v2/",
		clientID:      clientID,
		secret:        clientSecret,
		http:          httpClient,
		userAgent:     DefaultUserAgent,
		now:           time.Now,
		refreshBefore: 5 * time.Minute,
	}
}

// Identity names the credentials: the token endpoint, the client id and a
// SHA-256 digest of the secret (never the secret itself). A fleet-wide
// cache keys the shared token by it, so a process given a wrong (or
// rotated) secret does not borrow the token others fetched with the right
// one: it fetches its own and fails at once.
func (c *ClientCredentials) Identity() string {
	sum := sha256.Sum256([]byte(c.secret))
	return c.tokenURL + " " + c.clientID + " " + hex.EncodeToString(sum[:])
}

// Fetches returns how many tokens have been fetched from the token endpoint.
func (c *ClientCredentials) Fetches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// Token returns the cached token, or fetches one when there is none, when it
// expires within five minutes (or a tenth of its lifetime, if shorter), or
// after Invalidate.
func (c *ClientCredentials) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.token != "" && c.now().Before(c.expires) {
		t := c.token
		c.mu.Unlock()
		return t, nil
	}
	f := c.inflight
	if f == nil {
		f = &fetch{done: make(chan struct{})}
		c.inflight = f
		go c.run(f)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// run performs one fetch on behalf of every waiting caller. It is not tied to
// any one caller's context, so a cancelled caller does not fail the others.
func (c *ClientCredentials) run(f *fetch) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token, lifetime, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetches++
	c.inflight = nil
	if err == nil {
		early := c.refreshBefore
		if lifetime/10 < early {
			early = lifetime / 10
		}
		c.token, c.expires = token, c.now().Add(lifetime-early)
	}
	f.token, f.err = token, err
	close(f.done)
}

// Invalidate drops the cached token if it is still the given one.
func (c *ClientCredentials) Invalidate(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
	}
}

// Fetch gets a new token from the token endpoint, bypassing the cache, and
// returns it with its lifetime. A fleet-wide cache (worker/tokencache) uses
// it so that one process fetches for all.
func (c *ClientCredentials) Fetch(ctx context.Context) (token string, lifetime time.Duration, err error) {
	token, lifetime, err = c.fetch(ctx)
	c.mu.Lock()
	c.fetches++
	c.mu.Unlock()
	return token, lifetime, err
}

func (c *ClientCredentials) fetch(ctx context.Context) (string, time.Duration, error) {
	body, err := json.Marshal(map[string]string{
		"grant_type":    "client_credentials",
		"client_id":     c.clientID,
		"client_secret": c.secret,
		"audience":      c.audience,
	})
	if err != nil {
		return "", 0, &TokenError{Reason: "encode request", Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(string(body)))
	if err != nil {
		return "", 0, &TokenError{Reason: "build request", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		// The transport error names the URL, never the body: no secret in it.
		return "", 0, &TokenError{Reason: err.Error(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, &TokenError{Status: resp.StatusCode, Reason: "read response: " + err.Error(), Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(data, &e)
		reason := strings.TrimSpace(cut(e.Error+": "+e.Description, 200))
		if e.Error == "" {
			reason = http.StatusText(resp.StatusCode)
		}
		te := &TokenError{Status: resp.StatusCode, Reason: reason}
		if te.Throttled() {
			te.RetryAfter = throttledWait(resp.Header, c.now())
		}
		return "", 0, te
	}
	var t struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(data, &t); err != nil || t.AccessToken == "" {
		return "", 0, &TokenError{Status: resp.StatusCode, Reason: "response has no access_token", Err: err}
	}
	if t.TokenType != "" && !strings.EqualFold(t.TokenType, "Bearer") {
		return "", 0, &TokenError{Status: resp.StatusCode, Reason: fmt.Sprintf("token_type %q, want Bearer", cut(t.TokenType, 20))}
	}
	if t.ExpiresIn <= 0 {
		return "", 0, &TokenError{Status: resp.StatusCode, Reason: "response has no positive expires_in", Err: errors.New("bad expires_in")}
	}
	return t.AccessToken, time.Duration(t.ExpiresIn) * time.Second, nil
}

// throttledWait is how long a 429 asks to wait: Retry-After when given,
// else until X-RateLimit-Reset, else 0.
func throttledWait(h http.Header, now time.Time) time.Duration {
	if d := ParseRetryAfter(h, now); d > 0 {
		return d
	}
	if rl := ParseRateLimit(h); rl.Present && rl.Reset.After(now) {
		return rl.Reset.Sub(now)
	}
	return 0
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
