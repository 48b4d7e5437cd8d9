package mgmttest

import (
	"strconv"
	"testing"
	"time"
)

// rate is what a response's X-RateLimit-* headers say; -1 for an absent header.
type rate struct{ limit, remaining, reset int64 }

func rateOf(t *testing.T, r response) rate {
	t.Helper()
	get := func(name string) int64 {
		v := r.header.Get(name)
		if v == "" {
			return -1
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s: %q is not an integer", name, v)
		}
		return n
	}
	return rate{get("X-RateLimit-Limit"), get("X-RateLimit-Remaining"), get("X-RateLimit-Reset")}
}

// at returns the UNIX second epoch+d.
func at(d time.Duration) int64 { return epoch.Add(d).Unix() }

func TestBucketBurstThenRefill(t *testing.T) {
	for _, meaning := range []ResetMeaning{ResetFull, ResetNext} {
		t.Run(meaning.String(), func(t *testing.T) {
			// 5 tokens, one every 2 s.
			s := setup(t, Config{Seed: 30, Global: Bucket{Burst: 5, Rate: 0.5}, ResetMeaning: meaning})
			path := orgPath(s.org(0))
			full := func(tokensAfter float64) int64 { // ResetFull from epoch, after the burst
				return at(time.Duration((5 - tokensAfter) * 2 * float64(time.Second)))
			}
			for i := 1; i <= 5; i++ {
				r := s.do("GET", path, "")
				wantStatus(t, r, 200)
				want := rate{5, int64(5 - i), epoch.Unix()}
				if meaning == ResetFull {
					want.reset = full(float64(5 - i))
				} else if i == 5 {
					want.reset = at(2 * time.Second)
				}
				if got := rateOf(t, r); got != want {
					t.Fatalf("request %d: %+v, want %+v", i, got, want)
				}
			}
			r := s.do("GET", path, "")
			wantStatus(t, r, 429)
			wantJSON(t, r, `{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"}`)
			want := rate{5, 0, at(10 * time.Second)}
			if meaning == ResetNext {
				want.reset = at(2 * time.Second)
			}
			if got := rateOf(t, r); got != want {
				t.Fatalf("429: %+v, want %+v", got, want)
			}

			// Half a token later: still refused; Reset is rounded up to whole seconds.
			s.clock.Advance(1500 * time.Millisecond)
			r = s.do("GET", path, "")
			wantStatus(t, r, 429)
			if got := rateOf(t, r); got.remaining != 0 || got.reset != want.reset {
				t.Fatalf("after 1.5s: %+v, want reset %d", got, want.reset)
			}
			// The 429s consumed nothing: at 2 s exactly one token is back.
			s.clock.Advance(500 * time.Millisecond)
			r = s.do("GET", path, "")
			wantStatus(t, r, 200)
			if got := rateOf(t, r); got.remaining != 0 {
				t.Fatalf("after refill: %+v", got)
			}
			wantStatus(t, s.do("GET", path, ""), 429)

			// Long idle: full again, never more than the burst.
			s.clock.Advance(time.Hour)
			r = s.do("GET", path, "")
			want = rate{5, 4, at(time.Hour + 4*time.Second)} // now is epoch+1h+2s; full 2 s later
			if meaning == ResetNext {
				want.reset = at(time.Hour + 2*time.Second)
			}
			if got := rateOf(t, r); got != want {
				t.Fatalf("after idle: %+v, want %+v", got, want)
			}
			if st := s.srv.Stats(); st.Throttled != 3 || st.Requests("GET", 429) != 3 || st.Requests("GET", 200) != 7 {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

func TestResetRoundsUp(t *testing.T) {
	clock := newClock()
	clock.Advance(300 * time.Millisecond) // epoch + 0.3 s
	s := setup(t, Config{Seed: 31, Now: clock.Now, Global: Bucket{Burst: 2, Rate: 4}})
	c := s.srv.Connections()[0].ID
	r := s.do("POST", orgPath(s.org(0)), `{"connection_id":"`+c+`"}`)
	// One token short of full at 4/s: full at epoch+0.55 s, reported as epoch+1.
	if got := rateOf(t, r); got != (rate{2, 1, at(time.Second)}) {
		t.Fatalf("%+v", got)
	}
	// Full bucket: Reset is the current second, not rounded up. (A 401 takes no token.)
	clock.Advance(time.Second) // epoch + 1.3 s
	r = s.do("GET", orgPath(s.org(0)), "", "Authorization", "Bearer nope")
	if got := rateOf(t, r); got != (rate{2, 2, at(time.Second)}) {
		t.Fatalf("full: %+v", got)
	}
}

func TestBucketsPerEndpoint(t *testing.T) {
	s := setup(t, Config{Seed: 32, Write: Bucket{Burst: 1, Rate: 1}, Read: Bucket{Burst: 2, Rate: 1}})
	org := s.org(0)
	c := s.conns("samlp")[0]
	wantStatus(t, s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`), 201)
	r := s.do("PATCH", orgPath(org, c), `{"show_as_button":false}`)
	wantStatus(t, r, 429)
	wantJSON(t, r, `{"statusCode":429,"error":"Too Many Requests","message":"Organization connections write limit has been reached","errorCode":"too_many_requests"}`)
	// Reads have their own bucket.
	wantStatus(t, s.do("GET", orgPath(org, c), ""), 200)
	wantStatus(t, s.do("GET", orgPath(org), ""), 200)
	r = s.do("GET", orgPath(org), "")
	wantStatus(t, r, 429)
	if e := apiErr(t, r); e.Message != "Organization connections read limit has been reached" {
		t.Fatalf("message %q", e.Message)
	}
	// DELETE shares the write bucket.
	wantStatus(t, s.do("DELETE", orgPath(org, c), ""), 429)
	s.clock.Advance(time.Second)
	wantStatus(t, s.do("DELETE", orgPath(org, c), ""), 204)
}

func TestGlobalCheckedFirstAndNothingConsumedOn429(t *testing.T) {
	s := setup(t, Config{Seed: 33, Global: Bucket{Burst: 2, Rate: 1}, Write: Bucket{Burst: 1, Rate: 1}, HeaderPolicy: EndpointOnly})
	org := s.org(0)
	cs := s.srv.Connections()
	wantStatus(t, s.do("POST", orgPath(org), `{"connection_id":"`+cs[0].ID+`"}`), 201) // global 1, write 0
	r := s.do("POST", orgPath(org), `{"connection_id":"`+cs[1].ID+`"}`)                // write short
	wantStatus(t, r, 429)
	if e := apiErr(t, r); e.Message != "Organization connections write limit has been reached" {
		t.Fatalf("message %q", e.Message)
	}
	// The refused write took no global token: a read still gets the last one.
	r = s.do("GET", orgPath(org), "")
	wantStatus(t, r, 200)
	r = s.do("POST", orgPath(org), `{"connection_id":"`+cs[1].ID+`"}`) // both short: global is named
	if e := apiErr(t, r); e.Message != "Global limit has been reached" {
		t.Fatalf("message %q", e.Message)
	}
}

func TestHeaderPolicies(t *testing.T) {
	global, write := Bucket{Burst: 10, Rate: 1}, Bucket{Burst: 3, Rate: 0.5}
	tests := []struct {
		policy HeaderPolicy
		want   []rate // after POSTs 1, 2, 3 at epoch
	}{
		{Tightest, []rate{{3, 2, at(2 * time.Second)}, {3, 1, at(4 * time.Second)}, {3, 0, at(6 * time.Second)}}},
		{GlobalOnly, []rate{{10, 9, at(1 * time.Second)}, {10, 8, at(2 * time.Second)}, {10, 7, at(3 * time.Second)}}},
		{EndpointOnly, []rate{{3, 2, at(2 * time.Second)}, {3, 1, at(4 * time.Second)}, {3, 0, at(6 * time.Second)}}},
		{Alternate, []rate{{10, 9, at(1 * time.Second)}, {3, 1, at(4 * time.Second)}, {10, 7, at(3 * time.Second)}}},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			s := setup(t, Config{Seed: 34, Global: global, Write: write, HeaderPolicy: tt.policy})
			cs := s.srv.Connections()
			for i, want := range tt.want {
				r := s.do("POST", orgPath(s.org(0)), `{"connection_id":"`+cs[i].ID+`"}`)
				wantStatus(t, r, 201)
				if got := rateOf(t, r); got != want {
					t.Fatalf("POST %d: %+v, want %+v", i+1, got, want)
				}
			}
		})
	}
}

func TestTightestPrefersFewerRemaining(t *testing.T) {
	// The global bucket becomes the tighter one once reads have drained it.
	s := setup(t, Config{Seed: 35, Global: Bucket{Burst: 4, Rate: 1}, Write: Bucket{Burst: 3, Rate: 1}})
	org := s.org(0)
	if got := rateOf(t, s.do("GET", orgPath(org), "")); got.limit != 4 || got.remaining != 3 {
		t.Fatalf("read: %+v (only the global bucket limits reads)", got)
	}
	wantStatus(t, s.do("GET", orgPath(org), ""), 200)
	wantStatus(t, s.do("GET", orgPath(org), ""), 200)
	// global 1 left, write 3: a POST leaves global 0, write 2.
	c := s.srv.Connections()[0].ID
	if got := rateOf(t, s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`)); got.limit != 4 || got.remaining != 0 {
		t.Fatalf("post: %+v", got)
	}
}

func TestHeaderPolicyFallsBackToTheLimitingBucket(t *testing.T) {
	s := setup(t, Config{Seed: 36, Write: Bucket{Burst: 3, Rate: 1}, HeaderPolicy: GlobalOnly})
	c := s.srv.Connections()[0].ID
	if got := rateOf(t, s.do("POST", orgPath(s.org(0)), `{"connection_id":"`+c+`"}`)); got.limit != 3 || got.remaining != 2 {
		t.Fatalf("%+v", got)
	}
	// Reads are not limited at all here: no headers.
	if got := rateOf(t, s.do("GET", orgPath(s.org(0)), "")); got != (rate{-1, -1, -1}) {
		t.Fatalf("unlimited read has headers %+v", got)
	}
}

func TestHeadersOnErrorResponses(t *testing.T) {
	s := setup(t, Config{Seed: 37, Global: Bucket{Burst: 3, Rate: 1}})
	// 401 comes before rate limiting: it describes the bucket without taking from it.
	r := s.do("GET", orgPath(s.org(0)), "", "Authorization", "Bearer nope")
	wantStatus(t, r, 401)
	if got := rateOf(t, r); got != (rate{3, 3, epoch.Unix()}) {
		t.Fatalf("401: %+v", got)
	}
	r = s.do("GET", orgPath("org_nope"), "")
	wantStatus(t, r, 404)
	if got := rateOf(t, r); got != (rate{3, 2, at(time.Second)}) {
		t.Fatalf("404: %+v", got)
	}
}

func TestSetBucketMidRun(t *testing.T) {
	s := setup(t, Config{Seed: 38, Write: Bucket{Burst: 5, Rate: 1}})
	org := s.org(0)
	cs := s.srv.Connections()
	post := func(i int) response {
		return s.do("POST", orgPath(org), `{"connection_id":"`+cs[i].ID+`"}`)
	}
	for i := range 3 {
		wantStatus(t, post(i), 201) // 2 tokens left
	}
	// Shrink: the 2 tokens are kept (clamped to the new burst of 2).
	s.srv.SetBucket(WriteBucket, Bucket{Burst: 2, Rate: 0.1})
	if got := rateOf(t, post(3)); got != (rate{2, 1, at(10 * time.Second)}) {
		t.Fatalf("after shrink: %+v", got)
	}
	wantStatus(t, post(4), 201)
	wantStatus(t, post(5), 429)
	// Grow: tokens are not topped up, the new rate applies from now. Full at epoch+5.5 s,
	// reported rounded up.
	s.srv.SetBucket(WriteBucket, Bucket{Burst: 10, Rate: 2})
	wantStatus(t, post(5), 429)
	s.clock.Advance(500 * time.Millisecond)
	if got := rateOf(t, post(5)); got != (rate{10, 0, at(6 * time.Second)}) {
		t.Fatalf("after grow: %+v", got)
	}
	// Rate 0 stops limiting (and describing); limiting again starts full.
	s.srv.SetBucket(WriteBucket, Bucket{})
	r := post(6)
	wantStatus(t, r, 201)
	if got := rateOf(t, r); got.limit != -1 {
		t.Fatalf("unlimited bucket described: %+v", got)
	}
	s.srv.SetBucket(WriteBucket, Bucket{Burst: 1, Rate: 1})
	wantStatus(t, post(7), 201)
	wantStatus(t, s.do("DELETE", orgPath(org, cs[7].ID), ""), 429)
}

func TestSetBucketUnknownNamePanics(t *testing.T) {
	s := New(Config{Seed: 39})
	defer func() {
		if recover() == nil {
			t.Fatal("SetBucket with an unknown name did not panic")
		}
	}()
	s.SetBucket("bogus", Bucket{Burst: 1, Rate: 1})
}

func TestBucketArithmetic(t *testing.T) {
	b := newBucket(WriteBucket, Bucket{Burst: 5, Rate: 25.0 / 60}, epoch) // Essentials: 5 / 25 per minute
	for range 5 {
		b.tokens--
	}
	b.refill(epoch.Add(2400 * time.Millisecond))
	if !b.hasToken() || b.remaining() != 1 {
		t.Fatalf("after 2.4 s at 25/min: tokens %v", b.tokens)
	}
	// A clock that goes backwards adds nothing.
	b.refill(epoch)
	if b.remaining() != 1 {
		t.Fatalf("backwards clock: tokens %v", b.tokens)
	}
	zero := newBucket(GlobalBucket, Bucket{Burst: 0, Rate: 1}.normalized(), epoch)
	if zero.cfg.Burst != 1 || !zero.hasToken() {
		t.Fatalf("Burst 0 with a rate is not normalised to 1: %+v", zero)
	}
}
