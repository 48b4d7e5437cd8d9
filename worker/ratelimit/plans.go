package ratelimit

import (
	"fmt"
	"sort"
	"strings"
)

// Plans are the documented Management API rate limits of Auth0's plans
// (../shared/reference/auth0-api.md): the API-wide bucket and the
// organization-connections write and read buckets, as burst and refill per
// second. A tenant's real limits can differ; they are a starting point.
var Plans = map[string]Buckets{
	"free":         {Global: Bucket{Burst: 2, Rate: 2}},
	"essentials":   {Global: Bucket{Burst: 10, Rate: 150.0 / 60}, Write: Bucket{Burst: 5, Rate: 25.0 / 60}, Read: Bucket{Burst: 5, Rate: 50.0 / 60}},
	"professional": {Global: Bucket{Burst: 10, Rate: 150.0 / 60}, Write: Bucket{Burst: 5, Rate: 25.0 / 60}, Read: Bucket{Burst: 5, Rate: 50.0 / 60}},
	"enterprise":   {Global: Bucket{Burst: 50, Rate: 16}, Write: Bucket{Burst: 5, Rate: 150.0 / 60}, Read: Bucket{Burst: 10, Rate: 100.0 / 60}},
}

// PlanNames lists the plans, sorted.
func PlanNames() []string {
	var names []string
	for n := range Plans {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PlanBuckets returns the buckets of the named plan (any case).
func PlanBuckets(name string) (Buckets, error) {
	c, ok := Plans[strings.ToLower(name)]
	if !ok {
		return Buckets{}, fmt.Errorf("unknown plan %q: use one of %s", name, strings.Join(PlanNames(), ", "))
	}
	return c, nil
}
