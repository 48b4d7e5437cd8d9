package mgmttest

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Limits is the rate-limiting part of a simulated tenant: its buckets, which bucket the
// headers describe, what Reset means. The Server decides every /api/v2 request through one;
// tests of a client-side limiter can drive one directly, in virtual time, without HTTP, and
// meet exactly the answers an HTTP client would.
//
// Every time-dependent method takes the instant as an argument; the buckets start full at the
// instant given to NewLimits. A clock that goes backwards refills nothing. Limits is not safe
// for concurrent use (Server guards its own with a mutex).
type Limits struct {
	global, write, read bucket
	policy              HeaderPolicy
	meaning             ResetMeaning
	retryAfter          bool
	// turn counts described answers: Alternate and ResetNowOrPast look at its parity.
	turn uint64
}

// NewLimits returns the limits cfg describes (Global, Write, Read, HeaderPolicy, ResetMeaning,
// RetryAfter; the other fields are ignored), every bucket full at now.
func NewLimits(cfg Config, now time.Time) *Limits {
	return &Limits{
		global:     newBucket(GlobalBucket, cfg.Global, now),
		write:      newBucket(WriteBucket, cfg.Write, now),
		read:       newBucket(ReadBucket, cfg.Read, now),
		policy:     cfg.HeaderPolicy,
		meaning:    cfg.ResetMeaning,
		retryAfter: cfg.RetryAfter,
	}
}

// Verdict is the rate-limit decision on one request, and what its answer says about it.
type Verdict struct {
	// Allowed is true when the request took its tokens and goes on.
	Allowed bool
	// Bucket is the bucket that refused (when !Allowed): the global one when both are short.
	Bucket BucketName
	// Headers is what the answer's X-RateLimit-* headers say (Present false: none).
	Headers RateHeaders
	// RetryAfter > 0 is the Retry-After header of a 429, in whole seconds (at least 1 s): only
	// with Config.RetryAfter, only when !Allowed.
	RetryAfter time.Duration
}

// RateHeaders is what the X-RateLimit-* headers of one answer say.
type RateHeaders struct {
	// Present is false when the answer has no X-RateLimit-* headers (no bucket limits).
	Present bool
	// Limit is X-RateLimit-Limit, the described bucket's Burst.
	Limit int
	// Remaining is X-RateLimit-Remaining, its whole tokens left after this request.
	Remaining int
	// Reset is X-RateLimit-Reset in UNIX seconds; see ResetMeaning.
	Reset int64
}

// Apply sets the X-RateLimit-* headers on h; it does nothing when !Present.
func (rh RateHeaders) Apply(h http.Header) {
	if !rh.Present {
		return
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(rh.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(rh.Remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(rh.Reset, 10))
}

// endpoint returns the organization-connections bucket for method: Read for GET and HEAD,
// Write for everything else.
func (l *Limits) endpoint(method string) *bucket {
	if method == http.MethodGet || method == http.MethodHead {
		return &l.read
	}
	return &l.write
}

// bucket returns the live bucket named which, or nil.
func (l *Limits) bucket(which BucketName) *bucket {
	switch which {
	case GlobalBucket:
		return &l.global
	case WriteBucket:
		return &l.write
	case ReadBucket:
		return &l.read
	}
	return nil
}

// Take decides one /api/v2 request of the given HTTP method at instant now (GET and HEAD are
// reads, every other method a write). The global bucket is checked first, then the endpoint
// bucket; when either is short nothing is taken and the verdict names it, otherwise a token is
// taken from each that limits. The verdict's headers describe the state after the request.
func (l *Limits) Take(method string, now time.Time) Verdict {
	global, endpoint := &l.global, l.endpoint(method)
	global.refill(now)
	endpoint.refill(now)
	var refused *bucket
	for _, b := range []*bucket{global, endpoint} {
		if b.limits() && !b.hasToken() {
			refused = b
			break
		}
	}
	if refused == nil {
		global.take(now)
		endpoint.take(now)
		return Verdict{Allowed: true, Headers: l.describe(method, nil, now)}
	}
	v := Verdict{Bucket: refused.name, Headers: l.describe(method, refused, now)}
	if l.retryAfter {
		v.RetryAfter = refused.retryAfter(now)
	}
	return v
}

// Describe returns the headers of an answer to a request of method that took nothing: one
// refused before rate limiting (a 401 without Config.AuthSpends, an unknown route). Like
// Take, it advances the turn that Alternate and ResetNowOrPast count.
func (l *Limits) Describe(method string, now time.Time) RateHeaders {
	return l.describe(method, nil, now)
}

// describe chooses, by the header policy, the bucket an answer to method describes and
// returns its headers as of now; refused is the bucket that refused the request, or nil.
func (l *Limits) describe(method string, refused *bucket, now time.Time) RateHeaders {
	global, endpoint := &l.global, l.endpoint(method)
	global.refill(now)
	endpoint.refill(now)
	turn := l.turn
	l.turn++

	var first, second *bucket
	switch l.policy {
	case GlobalOnly:
		first, second = global, endpoint
	case EndpointOnly:
		first, second = endpoint, global
	case Alternate:
		first, second = global, endpoint
		if turn%2 == 1 {
			first, second = endpoint, global
		}
	case GlobalUnlessRefused:
		first, second = global, endpoint
		if refused != nil {
			first = refused
		}
	default: // Tightest
		first, second = global, endpoint
		if endpoint.limits() && (!global.limits() || endpoint.remaining() < global.remaining()) {
			first, second = endpoint, global
		}
	}
	chosen := first
	if !chosen.limits() {
		chosen = second
	}
	return chosen.headers(now, l.meaning, turn%2 == 1)
}

// Bucket returns the configuration of the bucket named which (GlobalBucket, WriteBucket or
// ReadBucket) as normalized by NewLimits, and false for any other name.
func (l *Limits) Bucket(which BucketName) (Bucket, bool) {
	b := l.bucket(which)
	if b == nil {
		return Bucket{}, false
	}
	return b.cfg, true
}

// SetBucket changes a bucket at now. Tokens earned so far at the old rate are kept and clamped
// to the new burst; a bucket that did not limit before starts full; a bucket that limits no
// more (zero Rate and Window) stops limiting. It returns an error for a name other than
// GlobalBucket, WriteBucket or ReadBucket.
func (l *Limits) SetBucket(which BucketName, b Bucket, now time.Time) error {
	live := l.bucket(which)
	if live == nil {
		return fmt.Errorf("mgmttest: unknown bucket %q, want %q, %q or %q", which, GlobalBucket, WriteBucket, ReadBucket)
	}
	live.reconfigure(b, now)
	return nil
}
