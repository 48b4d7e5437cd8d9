package mgmttest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the simulated tenant. It implements http.Handler; build it with New. It is safe
// for concurrent use.
type Server struct {
	now func() time.Time

	// mu guards everything below except rng. Of cfg, only Faults (changed by SetFaults) needs
	// it; the others are fixed by New (SetBucket changes limits, not cfg).
	mu         sync.Mutex
	cfg        Config
	tenant     tenant
	tokens     map[string]token
	limits     *Limits // the /api/v2 buckets and header policy
	tokenLimit bucket  // every /oauth/token request (Config.TokenLimit)
	stats      Stats
	writeLog   []AppliedWrite

	rngMu sync.Mutex // guards rng; taken after mu when both are held
	rng   *rand.Rand
}

// New returns a tenant seeded from cfg (see Config for defaults), with every bucket full.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	now := cfg.Now()
	return &Server{
		now:        cfg.Now,
		cfg:        cfg,
		tenant:     newTenant(cfg.Seed, cfg.Orgs, cfg.Connections),
		tokens:     make(map[string]token),
		limits:     NewLimits(cfg, now),
		tokenLimit: newBucket(TokenBucket, cfg.TokenLimit, now),
		stats:      Stats{ByRoute: make(map[string]int), Faults: make(map[FaultKind]int)},
		rng:        rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6f7267636f6e6e)),
	}
}

// ServeHTTP serves POST /oauth/token, the /api/v2 organization connections calls (legacy and
// newer), GET /api/v2/connections and the /sim/* admin endpoints; anything else is a 404. When a fault closes the connection and w
// cannot be hijacked, it panics with http.ErrAbortHandler, as net/http expects.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/oauth/token":
		s.serveToken(w, r)
	case p == "/api/v2" || strings.HasPrefix(p, "/api/v2/"):
		s.serveAPI(w, r)
	case strings.HasPrefix(p, "/sim/"):
		s.serveAdmin(w, r)
	default:
		writeJSON(w, http.StatusNotFound, apiError{StatusCode: http.StatusNotFound, Error: "Not Found", Message: "Not Found"})
	}
}

// serveAPI runs one /api/v2 request through the checks in the order the package documents.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, matched := matchRoute(r.Method, r.URL.EscapedPath())
	if !matched || rt.api == apiNewer && s.cfg.NoConnectionsAPI {
		s.mu.Lock()
		now := s.now()
		hdr := s.limits.Describe(r.Method, now)
		s.record(r.Method, RouteUnknown, http.StatusNotFound, "", false, now)
		s.mu.Unlock()
		hdr.Apply(w.Header())
		writeJSON(w, http.StatusNotFound, apiError{StatusCode: http.StatusNotFound, Error: "Not Found", Message: "Not Found"})
		return
	}
	// Read the body first, whatever the method: net/http only watches for the client going
	// away (cancelling r.Context()) once the body has been consumed, and the latency wait
	// depends on that. It is read outside the lock, so a slow client cannot stall the tenant;
	// what it says is only judged at the validation step.
	req := apiRequest{route: rt, query: r.URL.Query(), contentType: r.Header.Get("Content-Type"), correlation: r.Header.Get("X-Correlation-ID")}
	req.body, req.bodyErr = readBody(r)
	if !s.delay(r.Context()) {
		s.mu.Lock()
		s.record(r.Method, rt.template, 0, "", false, s.now())
		s.mu.Unlock()
		return
	}

	s.mu.Lock()
	now := s.now()
	res := s.decide(req, r.Header.Get("Authorization"), now)
	status := res.status
	if res.hangUp {
		status = 0
	}
	wrote := rt.isWrite() && (res.succeeded() || res.fault == FaultLostResponse)
	s.record(r.Method, rt.template, status, res.fault, wrote, now)
	s.mu.Unlock()

	if res.hangUp {
		hangUp(w, res.fault == FaultReset)
		return
	}
	if res.html {
		writeHTML(w, res.status, res.body.(string))
		return
	}
	res.hdr.Apply(w.Header())
	if res.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(res.retryAfter/time.Second), 10))
	}
	writeJSON(w, res.status, res.body)
}

// decide authenticates, rate-limits, injects faults and performs req, in the order the
// package documents (rate limiting before authentication with Config.AuthSpends). Called with
// s.mu held.
func (s *Server) decide(req apiRequest, authorization string, now time.Time) result {
	method := req.route.methodForBucket()
	var v Verdict
	if s.cfg.AuthSpends {
		if v = s.limits.Take(method, now); !v.Allowed {
			return throttled(v)
		}
	}
	if res, ok := s.authorize(authorization, req.scope, now); !ok {
		if s.cfg.AuthSpends {
			res.hdr = v.Headers
		} else {
			res.hdr = s.limits.Describe(method, now)
		}
		return res
	}
	if !s.cfg.AuthSpends {
		if v = s.limits.Take(method, now); !v.Allowed {
			return throttled(v)
		}
	}
	res := s.decideAfterLimits(req, now)
	res.hdr = v.Headers
	return res
}

// throttled is the 429 answer to a refused verdict.
func throttled(v Verdict) result {
	res := fail(http.StatusTooManyRequests, v.Bucket.limitMessage(), codeTooManyRequests)
	res.hdr, res.retryAfter = v.Headers, v.RetryAfter
	return res
}

// decideAfterLimits injects faults and performs req, once it passed authentication and rate
// limiting. Called with s.mu held.
func (s *Server) decideAfterLimits(req apiRequest, now time.Time) result {
	if res, ok := s.beforeApply(); !ok {
		return res
	}
	res := s.call(req)
	if req.isWrite() && res.succeeded() {
		if len(s.writeLog) < maxWriteLog {
			s.writeLog = append(s.writeLog, AppliedWrite{Org: req.org, Connection: res.conn, Method: req.method(), CorrelationID: req.correlation, At: now})
		}
		if s.loseResponse() {
			res.hangUp, res.fault = true, FaultLostResponse
		}
	}
	return res
}

// maxWriteLog bounds the write log.
const maxWriteLog = 1 << 20

// AppliedWrite is one write the tenant applied, in the order applied.
type AppliedWrite struct {
	Org, Connection string
	Method          string // POST, PATCH or DELETE
	CorrelationID   string // the request's X-Correlation-ID ("" when absent)
	At              time.Time
}

// Writes returns every write applied so far, in order (the first 1,048,576).
func (s *Server) Writes() []AppliedWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writeLog)
}

// methodForBucket returns the method whose endpoint bucket the call draws from.
func (rt route) methodForBucket() string {
	if rt.isWrite() {
		return http.MethodPost
	}
	return http.MethodGet
}

// method returns the HTTP method of the call.
func (rt route) method() string {
	switch rt.op {
	case opCreate:
		return http.MethodPost
	case opUpdate:
		return http.MethodPatch
	case opDelete:
		return http.MethodDelete
	}
	return http.MethodGet
}

// SetBucket changes a bucket while the server runs (see Limits.SetBucket): tokens earned so
// far at the old rate are kept and clamped to the new burst; a bucket that did not limit
// before starts full; a zero Rate (and Window) stops it limiting. It panics on a name other
// than GlobalBucket, WriteBucket or ReadBucket.
func (s *Server) SetBucket(which BucketName, b Bucket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.limits.SetBucket(which, b, s.now()); err != nil {
		panic(fmt.Sprintf("mgmttest: SetBucket: %v", err))
	}
}
