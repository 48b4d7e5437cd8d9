package mgmttest

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Default values used by New for zero Config fields.
const (
	DefaultOrgs         = 50
	DefaultConnections  = 8
	DefaultClientID     = "orgconn-sim"
	DefaultClientSecret = "orgconn-sim-secret"
	DefaultTokenTTL     = 24 * time.Hour
)

// The Management API scopes of the organization connections endpoints (legacy and newer
// alike) and of GET /api/v2/connections.
const (
	ScopeRead            = "read:organization_connections"
	ScopeCreate          = "create:organization_connections"
	ScopeUpdate          = "update:organization_connections"
	ScopeDelete          = "delete:organization_connections"
	ScopeReadConnections = "read:connections"
)

// DefaultScopes returns a new slice holding the four organization-connection scopes and
// read:connections, the scopes a client-credentials token gets when Config.Scopes is nil.
func DefaultScopes() []string {
	return []string{ScopeRead, ScopeCreate, ScopeUpdate, ScopeDelete, ScopeReadConnections}
}

// Config describes the simulated tenant. The zero value is usable: every field documents its
// default and what zero means. New copies the Config; later changes to the caller's value have
// no effect (use SetBucket and SetFaults for live changes).
type Config struct {
	// Orgs is the number of seeded organizations; 0 means DefaultOrgs (50), a negative number
	// means none. Ids are "org_" + 16 alphanumerics, derived from Seed and the index.
	Orgs int
	// Connections is the number of seeded tenant connections; 0 means DefaultConnections (8),
	// a negative number means none. Ids are "con_" + 16 alphanumerics, derived from Seed and
	// the index. Strategies cycle "auth0" (database), "samlp" (enterprise), "google-oauth2"
	// (social), "oidc" (enterprise); names are "conn-<index>-<strategy>", index from 0.
	Connections int
	// Seed seeds the ids, fault decisions and jitter. Equal seeds give equal tenants.
	Seed int64

	// ClientID and ClientSecret are the credentials /oauth/token accepts; empty means
	// DefaultClientID and DefaultClientSecret.
	ClientID, ClientSecret string
	// Scopes are granted to client-credentials tokens. nil means DefaultScopes(); an empty
	// non-nil slice grants none.
	Scopes []string
	// TokenTTL is the lifetime of issued tokens; 0 or less means DefaultTokenTTL (24h).
	// expires_in reports it in whole seconds.
	TokenTTL time.Duration

	// Global is the API-wide bucket, Write the organization-connections write bucket (POST,
	// PATCH, DELETE) and Read its read bucket (GET). A bucket that does not limit (zero Rate
	// and zero Window) is never described by X-RateLimit-* headers.
	Global, Write, Read Bucket
	// HeaderPolicy chooses which limiting bucket the X-RateLimit-* headers describe; the zero
	// value is Tightest.
	HeaderPolicy HeaderPolicy
	// ResetMeaning chooses what X-RateLimit-Reset means; the zero value is ResetFull.
	ResetMeaning ResetMeaning
	// RetryAfter adds a Retry-After header (whole seconds, rounded up, at least 1) to every
	// 429, /api/v2 and /oauth/token: the wait until the bucket that refused holds a token. false (the zero value)
	// sends none, as Auth0 documents none for the Management API.
	RetryAfter bool
	// AuthSpends makes 401 and 403 answers spend budget like any request: rate limiting is
	// checked before authentication, so an empty bucket answers 429 even to a bad token, and a
	// 401 or 403 takes a token. false (the zero value) checks authentication first and lets
	// 401s and 403s through without taking anything.
	AuthSpends bool
	// TokenLimit is the bucket of /oauth/token, separate from the /api/v2 buckets: every
	// request there takes a token, whatever its outcome, and one that finds it empty gets a
	// 429 {"error":"too_many_requests",…} with X-RateLimit-* headers. The zero value does not
	// limit.
	TokenLimit Bucket
	// EnableExisting chooses the answer to a POST of an already enabled pair; the zero value
	// is Conflict409.
	EnableExisting DuplicatePolicy
	// RemoveMissing chooses the answer to a DELETE of a pair that is not enabled (for a known
	// organization); the zero value is NotFound404.
	RemoveMissing MissingPolicy

	// NoConnectionsAPI makes the tenant one without the newer Organization connections
	// endpoints (/api/v2/organizations/{id}/connections[/{connection_id}], Early Access): they
	// answer 404 {"error":"Not Found","message":"Not Found"} like any unknown route, and are
	// counted as RouteUnknown. false (the zero value) serves them. The legacy
	// enabled_connections endpoints and GET /api/v2/connections are served either way.
	NoConnectionsAPI bool

	// Faults are injected into /api/v2 requests; the zero value injects none.
	Faults Faults

	// Now is the clock for buckets, token expiry and the write times in Stats; nil means
	// time.Now. Injected latency is real time whatever Now says.
	Now func() time.Time
}

// Bucket is a rate-limit bucket: it holds at most Burst tokens and starts full.
//
// With a zero Window it is a token bucket that refills continuously at Rate tokens per second;
// a Rate of 0 or less means it does not limit.
//
// With Window > 0 it is a fixed-window counter: Burst tokens per window, refilled to Burst at
// each window's start, windows aligned to whole multiples of Window since the UNIX epoch. Rate
// is then only reported (Shape.Binding, the simulate banner); set it to Burst/Window seconds.
// A zero Rate is filled in so.
//
// A limiting bucket with Burst below 1 is treated as Burst 1, since a request needs a whole
// token.
type Bucket struct {
	Burst  int           `json:"burst"`
	Rate   float64       `json:"rate"`
	Window time.Duration `json:"window,omitzero"`
}

// limits reports whether the bucket limits requests: a positive Rate or a positive Window.
func (b Bucket) limits() bool { return b.Rate > 0 || b.Window > 0 }

// normalized returns b with Burst raised to 1 when it limits, and a window bucket's zero Rate
// set to Burst per Window.
func (b Bucket) normalized() Bucket {
	if b.limits() && b.Burst < 1 {
		b.Burst = 1
	}
	if b.Window > 0 && b.Rate <= 0 {
		b.Rate = float64(b.Burst) / b.Window.Seconds()
	}
	return b
}

// validate reports a negative field, naming the bucket.
func (b Bucket) validate(name string) error {
	switch {
	case b.Burst < 0:
		return fmt.Errorf("mgmttest: %s bucket: burst %d is negative", name, b.Burst)
	case b.Rate < 0 || math.IsNaN(b.Rate) || math.IsInf(b.Rate, 0):
		return fmt.Errorf("mgmttest: %s bucket: rate %g is not a finite non-negative number", name, b.Rate)
	case b.Window < 0:
		return fmt.Errorf("mgmttest: %s bucket: window %v is negative", name, b.Window)
	}
	return nil
}

// Validate reports the first field of cfg that New would have to guess about: a negative
// bucket field, an undefined policy value, a negative latency. New does not call it (it
// accepts any Config, see the field docs); `orgconn simulate` and tests of presets do.
func (cfg Config) Validate() error {
	for _, b := range []struct {
		name string
		b    Bucket
	}{{"global", cfg.Global}, {"write", cfg.Write}, {"read", cfg.Read}, {"token", cfg.TokenLimit}} {
		if err := b.b.validate(b.name); err != nil {
			return err
		}
	}
	if _, err := cfg.HeaderPolicy.MarshalText(); err != nil {
		return err
	}
	if _, err := cfg.ResetMeaning.MarshalText(); err != nil {
		return err
	}
	if _, err := cfg.EnableExisting.MarshalText(); err != nil {
		return err
	}
	if _, err := cfg.RemoveMissing.MarshalText(); err != nil {
		return err
	}
	if cfg.Faults.Latency < 0 || cfg.Faults.Jitter < 0 {
		return fmt.Errorf("mgmttest: faults: latency %v and jitter %v must not be negative", cfg.Faults.Latency, cfg.Faults.Jitter)
	}
	return nil
}

// Faults are failures injected into /api/v2 requests. Probabilities are in [0, 1]: 0 or less
// never, 1 or more always. The zero value injects nothing.
type Faults struct {
	// Error5xx is the probability that a request that passed rate limiting gets a 503 with an
	// Auth0-shaped body; nothing is applied.
	Error5xx float64 `json:"error_5xx"`
	// Error500 is the probability that a request that passed rate limiting gets a 500 with an
	// Auth0-shaped JSON body; nothing is applied.
	Error500 float64 `json:"error_500"`
	// HTML502 is the probability that a request that passed rate limiting gets a 502 whose body
	// is an HTML page (Content-Type text/html), as a proxy in front of the API sends; nothing is
	// applied and there are no X-RateLimit-* headers.
	HTML502 float64 `json:"html_502"`
	// Drop is the probability that a request that passed rate limiting has its connection
	// closed without a response; nothing is applied.
	Drop float64 `json:"drop"`
	// Reset is the probability that a request that passed rate limiting has its TCP connection
	// reset (RST, not FIN: the client reads "connection reset by peer"); nothing is applied.
	Reset float64 `json:"reset"`
	// LostResponse is the probability that a write that succeeds is applied and then has its
	// connection closed without a response.
	LostResponse float64 `json:"lost_response"`
	// Latency is real time added before handling each /api/v2 request; the wait ends early,
	// with no response, when the request's context is done.
	Latency time.Duration `json:"latency"`
	// Jitter adds a uniformly random extra latency in [0, Jitter).
	Jitter time.Duration `json:"jitter"`
}

// withDefaults returns cfg with every zero field replaced by its default.
func (cfg Config) withDefaults() Config {
	if cfg.Orgs == 0 {
		cfg.Orgs = DefaultOrgs
	}
	if cfg.Connections == 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.Scopes == nil {
		cfg.Scopes = DefaultScopes()
	} else {
		cfg.Scopes = slices.Clone(cfg.Scopes)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Global = cfg.Global.normalized()
	cfg.Write = cfg.Write.normalized()
	cfg.Read = cfg.Read.normalized()
	cfg.TokenLimit = cfg.TokenLimit.normalized()
	return cfg
}
