// Package mgmttest is a strict, in-process simulator of one Auth0 tenant's Management API,
// limited to what orgconn drives: the client-credentials token endpoint and the five
// organization enabled-connections calls.
//
// Every other test, the demo command and `orgconn simulate` run against it, so it is strict
// wherever Auth0 is strict: the same status codes, the same error bodies
// ({"statusCode","error","message","errorCode"}), the same validation messages, scope checks,
// token expiry and token-bucket rate limiting with X-RateLimit-* headers. Where Auth0's
// behaviour is undocumented (which bucket the headers describe, what X-RateLimit-Reset means,
// duplicate enables, removing what is not enabled) Config chooses, so clients can be tested
// against every plausible reading.
//
// # Order of checks
//
// Each /api/v2 request goes through, in order: route match (404), injected latency,
// authentication and scope (401/403), rate limiting (429), injected faults (503 or a dropped
// connection), path/query/body validation (400/413), existence (404), conflict (409), apply,
// then the lost-response fault for writes, then the response. A request that is refused never
// changes tenant state, and a 429 consumes no tokens.
//
// # Time and randomness
//
// Buckets and token expiry read Config.Now, so tests drive them with a fake clock and no sleeps.
// Injected latency is real time. Fault decisions and jitter come from a math/rand/v2 source
// seeded from Config.Seed and guarded by a mutex; ids are derived from Seed and their index, so
// two servers built from the same Config have the same organizations and connections.
//
// # Safety
//
// A Server is safe for concurrent use. The /sim/* admin endpoints (state, stats, bucket and fault
// changes, token expiry) have no authentication: serve the simulator on loopback only.
package mgmttest
