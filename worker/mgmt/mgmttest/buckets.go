package mgmttest

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// BucketName names one of the simulator's rate-limit buckets.
type BucketName string

// The three buckets: the API-wide one and the organization-connections write and read ones.
const (
	GlobalBucket BucketName = "global"
	WriteBucket  BucketName = "write"
	ReadBucket   BucketName = "read"
)

// limitMessage is the 429 message Auth0 would send when this bucket is empty.
func (n BucketName) limitMessage() string {
	switch n {
	case WriteBucket:
		return "Organization connections write limit has been reached"
	case ReadBucket:
		return "Organization connections read limit has been reached"
	default:
		return "Global limit has been reached"
	}
}

// tokenEpsilon absorbs float rounding, so 0.41666…/s × 2.4 s counts as one whole token.
const tokenEpsilon = 1e-9

// bucket is a live token bucket. It is guarded by Server.mu.
type bucket struct {
	name   BucketName
	cfg    Bucket
	tokens float64
	last   time.Time
}

func newBucket(name BucketName, cfg Bucket, now time.Time) bucket {
	return bucket{name: name, cfg: cfg, tokens: float64(cfg.Burst), last: now}
}

func (b *bucket) limits() bool { return b.cfg.limits() }

// refill adds the tokens earned since the last refill, up to Burst. A clock that goes
// backwards adds nothing.
func (b *bucket) refill(now time.Time) {
	if !b.limits() {
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(float64(b.cfg.Burst), b.tokens+d.Seconds()*b.cfg.Rate)
		b.last = now
	}
}

func (b *bucket) hasToken() bool { return b.tokens+tokenEpsilon >= 1 }

// remaining is the number of whole tokens left.
func (b *bucket) remaining() int { return int(math.Floor(b.tokens + tokenEpsilon)) }

// reset returns the UNIX second, rounded up, at which the bucket is full (ResetFull) or holds a
// whole token (ResetNext); the current second when that is already so.
func (b *bucket) reset(now time.Time, meaning ResetMeaning) int64 {
	target := float64(b.cfg.Burst)
	if meaning == ResetNext {
		target = 1
	}
	need := target - b.tokens
	if need <= tokenEpsilon {
		return now.Unix()
	}
	at := now.Add(time.Duration(math.Round(need / b.cfg.Rate * 1e9)))
	sec := at.Unix()
	if at.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// reconfigure switches the bucket to cfg at now: tokens earned at the old rate are kept, then
// clamped to the new burst. A bucket that did not limit before starts full.
func (b *bucket) reconfigure(cfg Bucket, now time.Time) {
	wasLimiting := b.limits()
	b.refill(now)
	b.cfg = cfg.normalized()
	if !wasLimiting {
		b.tokens = float64(b.cfg.Burst)
	}
	b.tokens = math.Min(b.tokens, float64(b.cfg.Burst))
	b.last = now
}

// bucketFor returns the live bucket named which, or nil.
func (s *Server) bucketFor(which BucketName) *bucket {
	switch which {
	case GlobalBucket:
		return &s.global
	case WriteBucket:
		return &s.write
	case ReadBucket:
		return &s.read
	}
	return nil
}

// endpointBucket returns the organization-connections bucket for method: Read for GET and
// HEAD, Write for everything else.
func (s *Server) endpointBucket(method string) *bucket {
	if method == http.MethodGet || method == http.MethodHead {
		return &s.read
	}
	return &s.write
}

// take refills the global and endpoint buckets and takes a token from each that limits. When
// one is short it takes nothing and returns that bucket (global checked first). Called with
// s.mu held.
func (s *Server) take(method string, now time.Time) (short *bucket) {
	limiting := []*bucket{&s.global, s.endpointBucket(method)}
	for _, b := range limiting {
		b.refill(now)
		if b.limits() && !b.hasToken() {
			return b
		}
	}
	for _, b := range limiting {
		if b.limits() {
			b.tokens--
		}
	}
	return nil
}

// rateHeaders is what the X-RateLimit-* headers of one response say.
type rateHeaders struct {
	present   bool
	limit     int
	remaining int
	reset     int64
}

func (h rateHeaders) apply(w http.ResponseWriter) {
	if !h.present {
		return
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(h.limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(h.remaining))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(h.reset, 10))
}

// headersFor chooses, by the header policy, the bucket a response to method describes, and
// returns its headers as of now. Every call advances the Alternate turn. Called with s.mu held.
func (s *Server) headersFor(method string, now time.Time) rateHeaders {
	global, endpoint := &s.global, s.endpointBucket(method)
	global.refill(now)
	endpoint.refill(now)
	turn := s.headerTurn
	s.headerTurn++

	var first, second *bucket
	switch s.cfg.HeaderPolicy {
	case GlobalOnly:
		first, second = global, endpoint
	case EndpointOnly:
		first, second = endpoint, global
	case Alternate:
		first, second = global, endpoint
		if turn%2 == 1 {
			first, second = endpoint, global
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
	if !chosen.limits() {
		return rateHeaders{}
	}
	return rateHeaders{
		present:   true,
		limit:     chosen.cfg.Burst,
		remaining: chosen.remaining(),
		reset:     chosen.reset(now, s.cfg.ResetMeaning),
	}
}

// SetBucket changes a bucket while the server runs. Tokens earned so far at the old rate are
// kept and clamped to the new burst; a bucket that did not limit before starts full; a zero
// Rate stops it limiting. It panics on a name other than GlobalBucket, WriteBucket or
// ReadBucket.
func (s *Server) SetBucket(which BucketName, b Bucket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.bucketFor(which)
	if live == nil {
		panic(fmt.Sprintf("mgmttest: SetBucket: unknown bucket %q, want %q, %q or %q", which, GlobalBucket, WriteBucket, ReadBucket))
	}
	live.reconfigure(b, s.now())
	switch which {
	case GlobalBucket:
		s.cfg.Global = live.cfg
	case WriteBucket:
		s.cfg.Write = live.cfg
	case ReadBucket:
		s.cfg.Read = live.cfg
	}
}
