// Package mgmttest is a strict, in-process simulator of one Auth0 tenant's Management API,
// limited to what orgconn drives: the client-credentials token endpoint, the five legacy
// organization enabled-connections calls, the five newer Organization connections calls
// (/organizations/{id}/connections, Early Access: associations that may be disabled, with a
// name and an access level; Config.NoConnectionsAPI makes a tenant without them) and
// GET /connections.
//
// An association has the three legacy flags, is_enabled, organization_connection_name and
// organization_access_level. The legacy endpoints do not show a disabled one: their list
// leaves it out, their GET, PATCH and DELETE answer as for a missing pair and change nothing,
// and their POST answers 409.
//
// Every other test, the demo command and `orgconn simulate` run against it, so it is strict
// wherever Auth0 is strict: the same status codes, the same error bodies
// ({"statusCode","error","message","errorCode"}), the same validation messages, scope checks,
// token expiry and rate limiting with X-RateLimit-* headers. Where Auth0's behaviour is
// undocumented (which bucket the headers describe, what X-RateLimit-Reset means, whether a
// bucket refills continuously or by windows, whether a 401 spends budget, duplicate enables,
// removing what is not enabled) Config chooses, so clients can be tested against every
// plausible reading.
//
// # Rate limiting
//
// Limits is the whole rate-limiting decision — buckets (token buckets or fixed windows), which
// bucket the headers describe, what Reset means, Retry-After — as a pure value driven by the
// instants it is given. The Server decides every /api/v2 request through one, and tests of a
// client-side limiter can drive one directly, in virtual time and without HTTP, and meet the
// very answers an HTTP client would. /oauth/token has its own bucket (Config.TokenLimit).
//
// Shapes are named presets of all this (Shapes, LookupShape): one shared bucket, split
// buckets with Retry-After, headers that show only the burst bucket, headers that alternate,
// fixed windows, a Reset that is never in the future, and Auth0's Essentials and Enterprise
// numbers. Shape.Config takes a time scale that runs per-minute budgets faster.
//
// # Order of checks
//
// Each /api/v2 request goes through, in order: route match (404), injected latency,
// authentication and scope (401/403), rate limiting (429), injected faults (503, 500, an HTML
// 502, a dropped connection, a reset connection), path/query/body validation (400/413),
// existence (404), conflict (409), apply, then the lost-response fault for writes, then the
// response. With Config.AuthSpends rate limiting comes before authentication instead, so 401s
// and 403s take a token and an empty bucket answers 429 whatever the token. A request that is
// refused never changes tenant state, and a 429 consumes no tokens.
//
// Each /oauth/token request is first checked against Config.TokenLimit (429), then its method,
// parameters, credentials, audience and scopes.
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
// A Server is safe for concurrent use; a Limits is not (the Server guards its own). The /sim/*
// admin endpoints (state, stats, bucket and fault changes, token expiry) have no
// authentication: serve the simulator on loopback only.
package mgmttest
