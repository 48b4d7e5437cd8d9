// Package ratelimit paces Management API calls to a tenant's rate budget,
// shared by every worker process of a fleet.
//
// Auth0 checks each request against an API-wide (global) token bucket and
// then the endpoint's bucket; writes and reads of organization connections
// have separate buckets. Which bucket an answer's X-RateLimit-* headers
// describe is not documented. A Limiter keeps the fleet's model of every
// bucket it has seen in Redis, makes each call reserve a slot in all the
// buckets that apply to it, moves the model to what each answer's headers
// say, learns each bucket's size and refill rate (Learner), and after a 429
// pauses every caller of every process until the budget is back.
package ratelimit

// Bucket is a token bucket: Burst tokens at most, refilled at Rate per
// second. A zero Rate means the bucket is not modelled.
type Bucket struct {
	Burst int
	Rate  float64
}
