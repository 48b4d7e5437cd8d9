// Package mgmt is a client for the part of the Auth0 Management API that
// orgconn drives: an organization's enabled connections through the legacy
// endpoints (List, Get, Enable, Update, Remove), its associations through the
// newer Organization connections endpoints, enabled or not, with a name and an
// access level (ListOrgConnections, GetOrgConnection, CreateOrgConnection,
// UpdateOrgConnection, DeleteOrgConnection), and the tenant's connections
// (ListConnections).
//
// Each call makes one HTTP request (up to three when 401s make it refresh the
// token, twice at most; Go's transport may also resend a read, never a write, whose reused
// connection was dropped) and returns the decoded body or a typed error: *APIError for an HTTP
// answer other than success, *NetworkError when no answer came, *TokenError
// when no token could be had. It does not retry or sleep on its own: retry
// policy belongs to the caller. A Pacer, when configured, is asked before
// every request and told about every answer, so a rate limiter sees every
// call including follow-ups.
package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultUserAgent is sent when Config.UserAgent is empty.
const DefaultUserAgent = "orgconn (+https://github.com/orgconn/orgconn)"

// Class is the rate-limit bucket a call draws from: Auth0 keeps reads and
// writes of organization connections in separate buckets.
type Class int

// The two classes.
const (
	Read Class = iota
	Write
)

func (c Class) String() string {
	if c == Write {
		return "write"
	}
	return "read"
}

// Exchange describes one request and what came back, for a Pacer.
type Exchange struct {
	Class      Class
	Method     string
	Status     int // 0 when no response came
	RateLimit  RateLimit
	RetryAfter time.Duration
	Sent       time.Time // when the request was sent
	Received   time.Time // when the response (or the failure) arrived
}

// Pacer paces calls; it is the seam where orgconn's rate limiter plugs in.
type Pacer interface {
	// Wait blocks until a call of class c may be sent, or ctx is done. The
	// ticket it returns is handed back to Observe with the call's outcome.
	Wait(ctx context.Context, c Class) (Ticket, error)
	// Observe is told about every request once its outcome is known.
	Observe(t Ticket, e Exchange)
}

// Ticket is whatever a Pacer needs to connect an answer to the call it
// paced; the client passes it back unchanged.
type Ticket any

// Config configures a Client. Only BaseURL and Tokens are required.
type Config struct {
	// BaseURL is the tenant's base URL, e.g. "https://acme.eu.auth0.com" or,
	// for the simulator, "http://127.0.0.1:8080". See BaseURL.
	BaseURL string
	// Tokens supplies access tokens. Required.
	Tokens TokenSource
	// HTTPClient sends requests. Nil means a client with sane transport
	// timeouts and enough idle connections for a busy worker.
	HTTPClient *http.Client
	// Timeout bounds each request, from sending to reading the body. Zero
	// means 30 seconds.
	Timeout time.Duration
	// UserAgent names orgconn and its version. Empty means DefaultUserAgent.
	UserAgent string
	// Pacer, when not nil, is waited on before and told after every request.
	Pacer Pacer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Client calls the Management API. Safe for concurrent use.
type Client struct {
	base      string
	tokens    TokenSource
	http      *http.Client
	timeout   time.Duration
	userAgent string
	pacer     Pacer
	now       func() time.Time
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("mgmt: Config.BaseURL is empty")
	}
	if cfg.Tokens == nil {
		return nil, errors.New("mgmt: Config.Tokens is nil")
	}
	c := &Client{
		base:      strings.TrimRight(cfg.BaseURL, "/"),
		tokens:    cfg.Tokens,
		http:      cfg.HTTPClient,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		pacer:     cfg.Pacer,
		now:       cfg.Now,
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	if c.http == nil {
		c.http = defaultHTTPClient(c.timeout)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// BaseURL turns an AUTH0_DOMAIN value into a base URL: a bare host such as
// "acme.eu.auth0.com" becomes "https://acme.eu.auth0.com"; a full URL such as
// "http://127.0.0.1:8080" is kept (without a trailing slash). Paths, queries,
// user info and fragments are refused.
func BaseURL(domain string) (string, error) {
	d := strings.TrimSpace(domain)
	if d == "" {
		return "", errors.New("AUTH0_DOMAIN is empty: set it to your tenant's domain, e.g. acme.eu.auth0.com")
	}
	// Errors quote the value without its user info, which may hold a password.
	shown := cut(withoutUserInfo(d), 80)
	if !strings.Contains(d, "://") {
		d = "https://" + d
	}
	u, err := url.Parse(d)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole value
		}
		return "", fmt.Errorf("AUTH0_DOMAIN %q is not a host or URL: %v", shown, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("AUTH0_DOMAIN %q: scheme %q, want https (or http for a local simulator)", shown, u.Scheme)
	}
	if u.User != nil {
		return "", fmt.Errorf("AUTH0_DOMAIN %q: remove the user info (user:password@); the client ID and secret are set separately", shown)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("AUTH0_DOMAIN %q: want a host such as acme.eu.auth0.com or a URL with nothing after the host", shown)
	}
	return u.Scheme + "://" + u.Host, nil
}

// withoutUserInfo returns a host or URL with the user info ("user:password@")
// of its authority replaced by "…".
func withoutUserInfo(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	end := len(s)
	if i := strings.IndexAny(s[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndex(s[start:end], "@")
	if at < 0 {
		return s
	}
	return s[:start] + "…" + s[start+at:]
}

func defaultHTTPClient(timeout time.Duration) *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t, Timeout: timeout}
}

type correlationKey struct{}

// WithCorrelationID returns a context whose write requests carry id in the
// X-Correlation-ID header, which shows up in the tenant's logs; orgconn uses
// the task id. Characters other than printable ASCII become '_' and the id
// is cut to 64 characters, so the header is always valid.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	b := make([]byte, 0, min(len(id), 64))
	for _, r := range id {
		if len(b) == 64 {
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '_'
		}
		b = append(b, byte(r))
	}
	return context.WithValue(ctx, correlationKey{}, string(b))
}

// request is one call to make.
type request struct {
	class  Class
	method string
	path   string // escaped path under /api/v2
	query  url.Values
	body   any
	want   int // the success status
}

// maxRefreshes is how many times one call refreshes its token after a 401.
const maxRefreshes = 2

// do sends r (refreshing the token on a 401) and decodes a success body
// into out when out is not nil.
func (c *Client) do(ctx context.Context, r request, out any) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("%s %s: encode body: %w", r.method, r.path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		data, token, err := c.send(ctx, r, body)
		var ae *APIError
		// A 401 refreshes the token, twice at most: the token a refresh
		// gets may itself be refused when it was issued just before the
		// tenant revoked every token (it was fetched, or already cached by
		// a concurrent call, before the revocation reached this caller).
		if attempt < maxRefreshes && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			if _, static := c.tokens.(StaticToken); !static {
				c.tokens.Invalidate(token)
				continue
			}
		}
		if err != nil {
			return err
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("%s %s: decode %d response: %w", r.method, r.path, r.want, err)
			}
		}
		return nil
	}
}

// Releaser is implemented by a Pacer that can take back a slot granted by
// Wait but never used (the call could not be sent: no token).
type Releaser interface {
	Release(t Ticket)
}

// send waits for the pacer, then takes a token — after the wait, so that a
// long wait for budget never sends a token that expired meanwhile — and
// makes one HTTP request. It returns the body of a success response and
// the token it sent.
func (c *Client) send(ctx context.Context, r request, body []byte) ([]byte, string, error) {
	var ticket Ticket
	if c.pacer != nil {
		var err error
		if ticket, err = c.pacer.Wait(ctx, r.class); err != nil {
			return nil, "", err
		}
	}
	token, err := c.tokens.Token(ctx)
	if err != nil {
		if rel, ok := c.pacer.(Releaser); ok {
			rel.Release(ticket)
		}
		return nil, "", err
	}
	data, err := c.exchange(ctx, r, body, token, ticket)
	return data, token, err
}

// exchange makes one HTTP request with token and tells the pacer about its
// outcome.
func (c *Client) exchange(ctx context.Context, r request, body []byte, token string, ticket Ticket) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + "/api/v2" + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: build request: %w", r.method, r.path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if id, ok := ctx.Value(correlationKey{}).(string); ok && id != "" && r.class == Write {
		req.Header.Set("X-Correlation-ID", id)
	}
	ex := Exchange{Class: r.class, Method: r.method, Sent: c.now()}
	resp, err := c.http.Do(req)
	if err != nil {
		ex.Received = c.now()
		c.observe(ticket, ex)
		if ctxErr := context.Cause(ctx); ctxErr != nil && errors.Is(err, ctxErr) && !errors.Is(ctxErr, context.DeadlineExceeded) {
			return nil, ctxErr // the caller gave up: not the network's fault
		}
		return nil, &NetworkError{Method: r.method, Path: r.path, Err: err}
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	ex.Received = c.now()
	ex.Status = resp.StatusCode
	ex.RateLimit = ParseRateLimit(resp.Header)
	ex.RetryAfter = ParseRetryAfter(resp.Header, ex.Received)
	c.observe(ticket, ex)
	if readErr != nil {
		return nil, &NetworkError{Method: r.method, Path: r.path, Err: fmt.Errorf("read %d response: %w", resp.StatusCode, readErr)}
	}
	if resp.StatusCode == r.want {
		return data, nil
	}
	ae := &APIError{Method: r.method, Path: r.path, Status: resp.StatusCode, RateLimit: ex.RateLimit, RetryAfter: ex.RetryAfter}
	var e struct {
		Error     string `json:"error"`
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(data, &e) == nil {
		ae.Reason, ae.Message, ae.ErrorCode = cut(e.Error, 80), cut(e.Message, 200), cut(e.ErrorCode, 80)
	}
	return nil, ae
}

func (c *Client) observe(t Ticket, e Exchange) {
	if c.pacer != nil {
		c.pacer.Observe(t, e)
	}
}
