package mgmttest

import "fmt"

// HeaderPolicy chooses which limiting bucket the X-RateLimit-* headers of a response describe.
// Whatever the policy, headers describe a bucket that limits: when the chosen one does not, the
// other is described, and when neither does there are no headers. The values implement
// encoding.TextMarshaler and TextUnmarshaler, so flag.TextVar accepts them.
type HeaderPolicy int

const (
	// Tightest describes the bucket with the fewest whole tokens remaining after the request;
	// on a tie, the global bucket.
	Tightest HeaderPolicy = iota
	// GlobalOnly describes the global bucket.
	GlobalOnly
	// EndpointOnly describes the endpoint bucket (Write or Read).
	EndpointOnly
	// Alternate describes the global bucket on the 1st, 3rd, 5th… /api/v2 response and the
	// endpoint bucket on the others, so each response describes only one of them.
	Alternate
	// GlobalUnlessRefused describes the global (burst) bucket on every answer but a 429, and
	// the bucket that refused on a 429: the endpoint's sustained bucket shows only in its own
	// 429s. Auth0 "only publishes the effective burst and sustained rate limits" (go-auth0#501),
	// so a client may never see the bucket that binds until it is refused.
	GlobalUnlessRefused
)

var headerPolicyNames = []string{"tightest", "global", "endpoint", "alternate", "global-unless-refused"}

// String returns the policy's flag name: "tightest", "global", "endpoint", "alternate" or
// "global-unless-refused".
func (p HeaderPolicy) String() string { return enumName(headerPolicyNames, int(p)) }

// MarshalText returns String, or an error for a value that is not a defined policy.
func (p HeaderPolicy) MarshalText() ([]byte, error) {
	return enumMarshal("HeaderPolicy", headerPolicyNames, int(p))
}

// UnmarshalText accepts the names String returns.
func (p *HeaderPolicy) UnmarshalText(b []byte) error {
	return enumUnmarshal("header policy", headerPolicyNames, b, (*int)(p))
}

// ResetMeaning chooses what X-RateLimit-Reset means. It is always UNIX seconds. ResetFull and
// ResetNext round up, and give the current second when the moment they name has already come;
// for a fixed-window bucket (Bucket.Window > 0) both give the next window's start.
type ResetMeaning int

const (
	// ResetFull: the second at which the described bucket will be full again.
	ResetFull ResetMeaning = iota
	// ResetNext: the second at which the described bucket will next hold a whole token.
	ResetNext
	// ResetNow: always the current second (now rounded down), whatever the bucket holds, as a
	// per-second bucket may report; a client that waits "until Reset" does not wait at all.
	ResetNow
	// ResetPast: always the previous second (now rounded down, minus one): a Reset already in
	// the past, as a skewed clock or a cached header may give.
	ResetPast
	// ResetNowOrPast alternates: ResetNow on the 1st, 3rd, 5th… described answer, ResetPast on
	// the others (the same turn as Alternate counts).
	ResetNowOrPast
)

var resetMeaningNames = []string{"full", "next", "now", "past", "now-or-past"}

// String returns "full", "next", "now", "past" or "now-or-past".
func (m ResetMeaning) String() string { return enumName(resetMeaningNames, int(m)) }

// MarshalText returns String, or an error for a value that is not a defined meaning.
func (m ResetMeaning) MarshalText() ([]byte, error) {
	return enumMarshal("ResetMeaning", resetMeaningNames, int(m))
}

// UnmarshalText accepts the names String returns.
func (m *ResetMeaning) UnmarshalText(b []byte) error {
	return enumUnmarshal("reset meaning", resetMeaningNames, b, (*int)(m))
}

// DuplicatePolicy chooses the answer to a POST that enables an already enabled pair.
type DuplicatePolicy int

const (
	// Conflict409 answers 409 connection_already_enabled and changes nothing.
	Conflict409 DuplicatePolicy = iota
	// Upsert201 applies the flags given in the body, keeps the others, and answers 201.
	Upsert201
)

var duplicatePolicyNames = []string{"conflict", "upsert"}

// String returns "conflict" or "upsert".
func (p DuplicatePolicy) String() string { return enumName(duplicatePolicyNames, int(p)) }

// MarshalText returns String, or an error for a value that is not a defined policy.
func (p DuplicatePolicy) MarshalText() ([]byte, error) {
	return enumMarshal("DuplicatePolicy", duplicatePolicyNames, int(p))
}

// UnmarshalText accepts the names String returns.
func (p *DuplicatePolicy) UnmarshalText(b []byte) error {
	return enumUnmarshal("duplicate policy", duplicatePolicyNames, b, (*int)(p))
}

// MissingPolicy chooses the answer to a DELETE of a pair that is not enabled, for an
// organization that exists (an unknown organization is always a 404).
type MissingPolicy int

const (
	// NotFound404 answers 404 "No connection found by that id".
	NotFound404 MissingPolicy = iota
	// NoContent204 answers 204 as if the pair had been removed.
	NoContent204
)

var missingPolicyNames = []string{"notfound", "nocontent"}

// String returns "notfound" or "nocontent".
func (p MissingPolicy) String() string { return enumName(missingPolicyNames, int(p)) }

// MarshalText returns String, or an error for a value that is not a defined policy.
func (p MissingPolicy) MarshalText() ([]byte, error) {
	return enumMarshal("MissingPolicy", missingPolicyNames, int(p))
}

// UnmarshalText accepts the names String returns.
func (p *MissingPolicy) UnmarshalText(b []byte) error {
	return enumUnmarshal("missing policy", missingPolicyNames, b, (*int)(p))
}

func enumName(names []string, v int) string {
	if v < 0 || v >= len(names) {
		return fmt.Sprintf("invalid(%d)", v)
	}
	return names[v]
}

func enumMarshal(typ string, names []string, v int) ([]byte, error) {
	if v < 0 || v >= len(names) {
		return nil, fmt.Errorf("mgmttest: %s %d is not a defined value", typ, v)
	}
	return []byte(names[v]), nil
}

func enumUnmarshal(what string, names []string, b []byte, dst *int) error {
	for i, n := range names {
		if string(b) == n {
			*dst = i
			return nil
		}
	}
	return fmt.Errorf("mgmttest: unknown %s %q, want one of %q", what, b, names)
}
