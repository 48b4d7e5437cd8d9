package mgmttest

import (
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

// The Management API scopes of the organization enabled-connections endpoints.
const (
	ScopeRead   = "read:organization_connections"
	ScopeCreate = "create:organization_connections"
	ScopeUpdate = "update:organization_connections"
	ScopeDelete = "delete:organization_connections"
)

// DefaultScopes returns a new slice holding the four organization-connection scopes, the scopes
// a client-credentials token gets when Config.Scopes is nil.
func DefaultScopes() []string {
	return []string{ScopeRead, ScopeCreate, ScopeUpdate, ScopeDelete}
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
	// PATCH, DELETE) and Read its read bucket (GET). A bucket with a zero Rate does not limit
	// and is never described by X-RateLimit-* headers.
	Global, Write, Read Bucket
	// HeaderPolicy chooses which limiting bucket the X-RateLimit-* headers describe; the zero
	// value is Tightest.
	HeaderPolicy HeaderPolicy
	// ResetMeaning chooses what X-RateLimit-Reset means; the zero value is ResetFull.
	ResetMeaning ResetMeaning
	// EnableExisting chooses the answer to a POST of an already enabled pair; the zero value
	// is Conflict409.
	EnableExisting DuplicatePolicy
	// RemoveMissing chooses the answer to a DELETE of a pair that is not enabled (for a known
	// organization); the zero value is NotFound404.
	RemoveMissing MissingPolicy

	// Faults are injected into /api/v2 requests; the zero value injects none.
	Faults Faults

	// Now is the clock for buckets, token expiry and the write times in Stats; nil means
	// time.Now. Injected latency is real time whatever Now says.
	Now func() time.Time
}

// Bucket is a token bucket: it holds at most Burst tokens, starts full and refills continuously
// at Rate tokens per second. A Rate of 0 or less means the bucket does not limit. A limiting
// bucket with Burst below 1 is treated as Burst 1, since a request needs a whole token.
type Bucket struct {
	Burst int     `json:"burst"`
	Rate  float64 `json:"rate"`
}

// limits reports whether the bucket limits requests.
func (b Bucket) limits() bool { return b.Rate > 0 }

// normalized returns b with Burst raised to 1 when it limits.
func (b Bucket) normalized() Bucket {
	if b.limits() && b.Burst < 1 {
		b.Burst = 1
	}
	return b
}

// Faults are failures injected into /api/v2 requests. Probabilities are in [0, 1]: 0 or less
// never, 1 or more always. The zero value injects nothing.
type Faults struct {
	// Error5xx is the probability that a request that passed rate limiting gets a 503 with an
	// Auth0-shaped body; nothing is applied.
	Error5xx float64 `json:"error_5xx"`
	// Drop is the probability that a request that passed rate limiting has its connection
	// closed without a response; nothing is applied.
	Drop float64 `json:"drop"`
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
	return cfg
}
