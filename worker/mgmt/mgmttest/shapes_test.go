package mgmttest

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shape returns the shape named name, failing the test when there is none.
func shape(t *testing.T, name string) Shape {
	t.Helper()
	sh, err := LookupShape(name)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

func TestShapesDocumentedAndValid(t *testing.T) {
	shapes := Shapes()
	if len(shapes) < 8 {
		t.Fatalf("%d shapes, want at least 8", len(shapes))
	}
	seen := map[string]bool{}
	for _, sh := range shapes {
		if sh.Name == "" || seen[sh.Name] {
			t.Fatalf("shape name %q empty or repeated", sh.Name)
		}
		seen[sh.Name] = true
		if strings.TrimSpace(sh.Doc) == "" || strings.Contains(sh.Doc, "\n") {
			t.Errorf("%s: Doc %q is not one non-empty line", sh.Name, sh.Doc)
		}
		for _, k := range []float64{0, 1, 7.5} {
			cfg := sh.Config(k)
			if err := cfg.Validate(); err != nil {
				t.Errorf("%s: Config(%g): %v", sh.Name, k, err)
			}
			if !cfg.AuthSpends || !cfg.TokenLimit.limits() || cfg.Faults != (Faults{}) {
				t.Errorf("%s: Config(%g) = %+v: want AuthSpends, a token limit and no faults", sh.Name, k, cfg)
			}
			if b := sh.Binding(k); !b.limits() || b.Burst < 1 {
				t.Errorf("%s: Binding(%g) = %+v limits nothing", sh.Name, k, b)
			}
		}
		if got := shape(t, sh.Name); got != sh {
			t.Errorf("LookupShape(%q) = %+v", sh.Name, got)
		}
	}
	_, err := LookupShape("nope")
	if err == nil {
		t.Fatal("LookupShape of an unknown name succeeded")
	}
	for _, sh := range shapes {
		if !strings.Contains(err.Error(), sh.Name) {
			t.Errorf("error %q does not list %q", err, sh.Name)
		}
	}
	if (Shape{Name: "nope"}).Config(1).Global.limits() {
		t.Error("an unlisted shape limits")
	}
}

func TestShapeBindings(t *testing.T) {
	tests := []struct {
		shape string
		k     float64
		want  Bucket
	}{
		{"shared", 1, Bucket{Burst: 10, Rate: 20}},
		{"split", 1, Bucket{Burst: 5, Rate: 8}},
		{"burst-headers", 1, Bucket{Burst: 30, Rate: 8}},
		{"alternate", 1, Bucket{Burst: 5, Rate: 10}},
		{"window", 1, Bucket{Burst: 120, Rate: 8, Window: 15 * time.Second}},
		{"window", 15, Bucket{Burst: 120, Rate: 120, Window: time.Second}},
		{"reset-now", 0, Bucket{Burst: 10, Rate: 20}},
		{"essentials", 1, Bucket{Burst: 5, Rate: 25.0 / 60}},
		{"essentials", 20, Bucket{Burst: 5, Rate: 25.0 / 60 * 20}},
		{"enterprise", 4, Bucket{Burst: 5, Rate: 10}},
	}
	for _, tt := range tests {
		got := shape(t, tt.shape).Binding(tt.k)
		if got.Burst != tt.want.Burst || got.Window != tt.want.Window || math.Abs(got.Rate-tt.want.Rate) > 1e-9 {
			t.Errorf("%s.Binding(%g) = %+v, want %+v", tt.shape, tt.k, got, tt.want)
		}
	}
}

func TestTimeScaleMultipliesRates(t *testing.T) {
	sh := shape(t, "essentials")
	one, fast := sh.Config(1), sh.Config(60)
	for _, p := range []struct {
		name      string
		one, fast Bucket
	}{{"global", one.Global, fast.Global}, {"read", one.Read, fast.Read}, {"write", one.Write, fast.Write}, {"token", one.TokenLimit, fast.TokenLimit}} {
		if p.fast.Burst != p.one.Burst || math.Abs(p.fast.Rate-60*p.one.Rate) > 1e-9 {
			t.Errorf("%s: %+v at 60×, %+v at 1×", p.name, p.fast, p.one)
		}
	}
	// Essentials writes: 5 then one every 2.4 s; at 60× one every 40 ms.
	for _, tc := range []struct {
		k    float64
		wait time.Duration
	}{{1, 2400 * time.Millisecond}, {60, 40 * time.Millisecond}} {
		l := NewLimits(sh.Config(tc.k), epoch)
		for i := range 5 {
			if v := l.Take("POST", epoch); !v.Allowed {
				t.Fatalf("%g×: write %d refused", tc.k, i+1)
			}
		}
		if v := l.Take("POST", epoch.Add(tc.wait-time.Millisecond)); v.Allowed || v.Bucket != WriteBucket {
			t.Fatalf("%g×: a write before %v: %+v", tc.k, tc.wait, v)
		}
		if v := l.Take("POST", epoch.Add(tc.wait)); !v.Allowed {
			t.Fatalf("%g×: no write token after %v: %+v", tc.k, tc.wait, v)
		}
	}
	// Windows shrink by the same factor.
	if w := shape(t, "window").Config(15).Write.Window; w != time.Second {
		t.Errorf("window at 15×: %v, want 1s", w)
	}
}

func TestShapeSharedBucket(t *testing.T) {
	l := NewLimits(shape(t, "shared").Config(1), epoch)
	for i := 1; i <= 10; i++ {
		v := l.Take("GET", epoch)
		if !v.Allowed || v.Headers != (RateHeaders{Present: true, Limit: 10, Remaining: 10 - i, Reset: ceilSecond(epoch.Add(time.Duration(i) * 50 * time.Millisecond))}) {
			t.Fatalf("read %d: %+v", i, v)
		}
	}
	// The reads drained the one bucket writes draw from too.
	v := l.Take("POST", epoch)
	if v.Allowed || v.Bucket != GlobalBucket || v.Headers.Limit != 10 || v.Headers.Remaining != 0 || v.RetryAfter != 0 {
		t.Fatalf("write after 10 reads: %+v", v)
	}
	if v := l.Take("DELETE", epoch.Add(50*time.Millisecond)); !v.Allowed || v.Headers.Remaining != 0 {
		t.Fatalf("write after one refill: %+v", v)
	}
}

func TestShapeSplitRetryAfter(t *testing.T) {
	l := NewLimits(shape(t, "split").Config(1), epoch)
	for i := range 5 {
		if v := l.Take("PATCH", epoch); !v.Allowed || v.RetryAfter != 0 {
			t.Fatalf("write %d: %+v", i+1, v)
		}
	}
	// Tightest: the write bucket (0 left) is described; its next token comes in 125 ms,
	// Retry-After says 1 s. Reads have their own bucket: a read passes, and leaves global and
	// read at 4 each (a tie: the global bucket is described).
	v := l.Take("POST", epoch)
	if v.Allowed || v.Bucket != WriteBucket || v.RetryAfter != time.Second || v.Headers.Limit != 5 || v.Headers.Remaining != 0 {
		t.Fatalf("6th write: %+v", v)
	}
	if v := l.Take("GET", epoch); !v.Allowed || v.Headers.Limit != 10 || v.Headers.Remaining != 4 {
		t.Fatalf("read: %+v", v)
	}
}

func TestShapeBurstHeaders(t *testing.T) {
	// Writes at 10/s: the global bucket (20/s) never runs short, the write bucket (30, 8/s)
	// loses 0.2 a request and refuses after 150.
	l := NewLimits(shape(t, "burst-headers").Config(1), epoch)
	now := epoch
	for i := 1; ; i++ {
		v := l.Take("POST", now)
		if !v.Allowed {
			if i < 100 || v.Bucket != WriteBucket || v.Headers != (RateHeaders{Present: true, Limit: 30, Remaining: 0, Reset: v.Headers.Reset}) || v.RetryAfter != 0 {
				t.Fatalf("request %d refused: %+v", i, v)
			}
			break
		}
		if v.Headers.Limit != 10 {
			t.Fatalf("success %d describes %+v, want the global bucket (limit 10)", i, v.Headers)
		}
		now = now.Add(100 * time.Millisecond)
	}
	// Once a refusal is over, successes describe the global bucket again.
	if v := l.Take("POST", now.Add(time.Second)); !v.Allowed || v.Headers.Limit != 10 {
		t.Fatalf("after the refusal: %+v", v)
	}
	// A refusal by the global bucket describes it.
	l = NewLimits(shape(t, "burst-headers").Config(1), epoch)
	for range 10 {
		l.Take("GET", epoch)
	}
	if v := l.Take("POST", epoch); v.Allowed || v.Bucket != GlobalBucket || v.Headers.Limit != 10 {
		t.Fatalf("global refusal: %+v", v)
	}
}

func TestShapeAlternate(t *testing.T) {
	l := NewLimits(shape(t, "alternate").Config(1), epoch)
	var limits []int
	for range 4 {
		limits = append(limits, l.Take("POST", epoch).Headers.Limit)
	}
	if want := []int{10, 5, 10, 5}; !equalInts(limits, want) {
		t.Fatalf("described limits %v, want %v", limits, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestShapeWindowRefillsAtWindowStart(t *testing.T) {
	l := NewLimits(shape(t, "window").Config(1), epoch)
	// Global: 10 per 1-s window. epoch is a whole second.
	mid := epoch.Add(500 * time.Millisecond)
	for i := 1; i <= 10; i++ {
		if v := l.Take("GET", mid); !v.Allowed || v.Headers != (RateHeaders{Present: true, Limit: 10, Remaining: 10 - i, Reset: epoch.Unix() + 1}) {
			t.Fatalf("read %d: %+v", i, v)
		}
	}
	if v := l.Take("GET", epoch.Add(999_999_999)); v.Allowed || v.Bucket != GlobalBucket || v.Headers.Reset != epoch.Unix()+1 {
		t.Fatalf("a nanosecond before the window: %+v", v)
	}
	if v := l.Take("GET", epoch.Add(time.Second)); !v.Allowed || v.Headers.Remaining != 9 || v.Headers.Reset != epoch.Unix()+2 {
		t.Fatalf("at the window start: %+v", v)
	}

	// Write: 120 per 15-s window, windows at multiples of 15 s since the UNIX epoch.
	start := time.Unix(epoch.Unix()-epoch.Unix()%15+15, 0) // the first 15-s boundary after epoch
	l = NewLimits(shape(t, "window").Config(1), start)
	now := start
	for i := 1; i <= 120; i++ {
		v := l.Take("POST", now)
		if !v.Allowed {
			t.Fatalf("write %d at %v: %+v", i, now.Sub(start), v)
		}
		if i%10 == 0 { // the global window allows 10 a second
			now = now.Add(time.Second)
		}
	}
	// now = start+12 s: the global window is fresh, the write window spent until start+15 s.
	v := l.Take("POST", start.Add(15*time.Second-time.Nanosecond))
	if v.Allowed || v.Bucket != WriteBucket || v.Headers != (RateHeaders{Present: true, Limit: 120, Remaining: 0, Reset: start.Unix() + 15}) {
		t.Fatalf("before the write window: %+v", v)
	}
	if v := l.Take("POST", start.Add(15*time.Second)); !v.Allowed {
		t.Fatalf("at the write window start: %+v", v)
	}
}

func TestWindowBucketAlignsToUnixEpoch(t *testing.T) {
	// 7-s windows: epoch (1,700,000,000 = 7 × 242,857,142 + 6) is 6 s into one.
	b := newBucket(WriteBucket, Bucket{Burst: 2, Window: 7 * time.Second}, epoch.Add(-5*time.Second))
	if b.cfg.Rate != 2.0/7 {
		t.Fatalf("rate %v, want 2/7", b.cfg.Rate)
	}
	b.take(epoch.Add(-5 * time.Second))
	b.take(epoch)
	if b.take(epoch.Add(999 * time.Millisecond)) {
		t.Fatal("a third token within the window")
	}
	if got := b.reset(epoch, ResetFull, false); got != epoch.Unix()+1 {
		t.Fatalf("reset %d, want %d", got, epoch.Unix()+1)
	}
	if !b.take(epoch.Add(time.Second)) {
		t.Fatal("no token at the next window")
	}
}

func TestShapeResetNowOrPast(t *testing.T) {
	l := NewLimits(shape(t, "reset-now").Config(1), epoch)
	seen := map[int64]bool{}
	now := epoch.Add(300 * time.Millisecond)
	for i := range 30 {
		v := l.Take("POST", now)
		if v.Headers.Reset > now.Unix() {
			t.Fatalf("answer %d at %v: Reset %d is in the future (%+v)", i+1, now, v.Headers.Reset, v)
		}
		seen[now.Unix()-v.Headers.Reset] = true
		now = now.Add(30 * time.Millisecond)
	}
	if !seen[0] || !seen[1] || len(seen) != 2 {
		t.Fatalf("Reset offsets seen %v, want the current second and the previous one", seen)
	}
	for _, m := range []ResetMeaning{ResetNow, ResetPast} {
		l := NewLimits(Config{Global: Bucket{Burst: 1, Rate: 1}, ResetMeaning: m}, epoch)
		if got, want := l.Take("GET", epoch.Add(1500*time.Millisecond)).Headers.Reset, epoch.Unix()+1-int64(m-ResetNow); got != want {
			t.Fatalf("%v: Reset %d, want %d", m, got, want)
		}
	}
}

func TestLimitsDescribeTakesNothing(t *testing.T) {
	l := NewLimits(Config{Global: Bucket{Burst: 2, Rate: 1}}, epoch)
	if h := l.Describe("GET", epoch); h != (RateHeaders{Present: true, Limit: 2, Remaining: 2, Reset: epoch.Unix()}) {
		t.Fatalf("describe: %+v", h)
	}
	if err := l.SetBucket("bogus", Bucket{}, epoch); err == nil {
		t.Fatal("SetBucket accepted an unknown name")
	}
	if b, ok := l.Bucket(GlobalBucket); !ok || b != (Bucket{Burst: 2, Rate: 1}) {
		t.Fatalf("Bucket: %+v %v", b, ok)
	}
}

// TestServerAnswersAsLimits drives the same request sequence through a Server over HTTP and
// through a Limits in process: every answer's status, X-RateLimit-* and Retry-After must be
// what the verdict says.
func TestServerAnswersAsLimits(t *testing.T) {
	methods := []string{"POST", "GET", "POST", "DELETE", "PATCH", "GET"}
	for _, sh := range Shapes() {
		t.Run(sh.Name, func(t *testing.T) {
			cfg := sh.Config(1)
			cfg.Seed = 50
			s := setup(t, cfg)
			l := NewLimits(cfg, epoch)
			org, c := s.org(0), s.srv.Connections()[0].ID
			for i := range 80 {
				m := methods[i%len(methods)]
				var r response
				switch m {
				case "POST":
					r = s.do(m, orgPath(org), `{"connection_id":"`+c+`"}`)
				case "PATCH":
					r = s.do(m, orgPath(org, c), `{"show_as_button":false}`)
				default:
					r = s.do(m, orgPath(org, c), "")
				}
				v := l.Take(m, s.clock.Now())
				if (r.status == 429) == v.Allowed {
					t.Fatalf("request %d %s: status %d, verdict %+v", i+1, m, r.status, v)
				}
				want := rate{-1, -1, -1}
				if v.Headers.Present {
					want = rate{int64(v.Headers.Limit), int64(v.Headers.Remaining), v.Headers.Reset}
				}
				if got := rateOf(t, r); got != want {
					t.Fatalf("request %d %s: headers %+v, verdict %+v", i+1, m, got, v)
				}
				wantRetry := ""
				if v.RetryAfter > 0 {
					wantRetry = strconv.Itoa(int(v.RetryAfter / time.Second))
				}
				if got := r.header.Get("Retry-After"); got != wantRetry {
					t.Fatalf("request %d %s: Retry-After %q, want %q", i+1, m, got, wantRetry)
				}
				s.clock.Advance(time.Duration(i%5) * 7 * time.Millisecond)
			}
			if st := s.srv.Stats(); st.Throttled == 0 {
				t.Fatalf("no request was throttled: %v", st)
			}
		})
	}
}

func TestTokenEndpointLimit(t *testing.T) {
	cfg := shape(t, "split").Config(1)
	cfg.Seed = 51
	s := setup(t, cfg)
	body := "grant_type=client_credentials&client_id=" + DefaultClientID + "&client_secret=" + DefaultClientSecret + "&audience=" + s.ts.URL + "/api/v2/"
	for i := 1; i <= 10; i++ {
		r := s.tokenRequest("application/x-www-form-urlencoded", body)
		wantStatus(t, r, 200)
		if got := rateOf(t, r); got.limit != 10 || got.remaining != int64(10-i) {
			t.Fatalf("token %d: %+v", i, got)
		}
	}
	// A bad request spends the budget too; the next finds it empty.
	wantStatus(t, s.tokenRequest("application/x-www-form-urlencoded", "grant_type=password"), 429)
	s.clock.Advance(100 * time.Millisecond)
	wantStatus(t, s.tokenRequest("application/x-www-form-urlencoded", "grant_type=password"), 400)
	r := s.tokenRequest("application/x-www-form-urlencoded", body)
	wantStatus(t, r, 429)
	wantJSON(t, r, `{"error":"too_many_requests","error_description":"Global limit has been reached"}`)
	if got := rateOf(t, r); got != (rate{10, 0, at(2 * time.Second)}) { // full at 1.1 s, rounded up
		t.Fatalf("429 headers %+v", got)
	}
	if got := r.header.Get("Retry-After"); got != "1" { // split sends Retry-After: a token in 0.1 s
		t.Fatalf("Retry-After %q, want 1", got)
	}
	if st := s.srv.Stats(); st.TokensIssued != 10 || st.TokensThrottled != 2 || st.Total != 0 {
		t.Fatalf("stats %v", st)
	}
	// The /api/v2 buckets are untouched.
	wantStatus(t, s.do("GET", orgPath(s.org(0)), ""), 200)
}

func TestAuthSpends(t *testing.T) {
	cfg := shape(t, "shared").Config(1)
	cfg.Seed = 52
	s := setup(t, cfg)
	path := orgPath(s.org(0))
	r := s.do("GET", path, "", "Authorization", "Bearer nope")
	wantStatus(t, r, 401)
	if got := rateOf(t, r); got != (rate{10, 9, at(time.Second)}) {
		t.Fatalf("401 took no token: %+v", got)
	}
	ro := s.srv.IssueToken([]string{ScopeRead}, 0)
	r = s.do("POST", path, `{"connection_id":"`+s.srv.Connections()[0].ID+`"}`, "Authorization", "Bearer "+ro)
	wantStatus(t, r, 403)
	if got := rateOf(t, r); got.remaining != 8 {
		t.Fatalf("403 took no token: %+v", got)
	}
	for range 8 {
		wantStatus(t, s.do("GET", path, ""), 200)
	}
	// Empty: rate limiting comes first, so even a bad token is refused with a 429.
	wantStatus(t, s.do("GET", path, "", "Authorization", "Bearer nope"), 429)
	if st := s.srv.Stats(); st.Throttled != 1 || st.Requests("", 401) != 1 || st.Requests("", 403) != 1 {
		t.Fatalf("stats %v", st)
	}
}

func TestFault500(t *testing.T) {
	s := setup(t, Config{Seed: 53, Global: Bucket{Burst: 2, Rate: 1}, Faults: Faults{Error500: 1}})
	org, c := s.org(0), s.srv.Connections()[0].ID
	r := s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`)
	wantStatus(t, r, 500)
	wantJSON(t, r, `{"statusCode":500,"error":"Internal Server Error","message":"An internal server error occurred."}`)
	if got := rateOf(t, r); got.remaining != 1 {
		t.Fatalf("a 500 must consume a token: %+v", got)
	}
	if len(s.srv.State()) != 0 || s.srv.Stats().Faults[FaultError500] != 1 {
		t.Fatalf("state %v stats %v", s.srv.State(), s.srv.Stats())
	}
}

func TestFaultHTML502(t *testing.T) {
	s := setup(t, Config{Seed: 54, Global: Bucket{Burst: 2, Rate: 1}, Faults: Faults{HTML502: 1}})
	org, c := s.org(0), s.srv.Connections()[0].ID
	r := s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`)
	wantStatus(t, r, 502)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type %q, want text/html", ct)
	}
	if !strings.Contains(string(r.body), "<html>") || !strings.Contains(string(r.body), "502 Bad Gateway") {
		t.Fatalf("body %q is not an HTML error page", r.body)
	}
	if got := rateOf(t, r); got != (rate{-1, -1, -1}) {
		t.Fatalf("a proxy's 502 has rate-limit headers: %+v", got)
	}
	st := s.srv.Stats()
	if len(s.srv.State()) != 0 || st.Faults[FaultHTML502] != 1 || st.Count("POST", RouteEnabledConnections, 502) != 1 {
		t.Fatalf("state %v stats %v", s.srv.State(), st)
	}
}

func TestFaultReset(t *testing.T) {
	s := setup(t, Config{Seed: 55, Faults: Faults{Reset: 1}})
	org, c := s.org(0), s.srv.Connections()[0].ID
	_, err := s.send("POST", orgPath(org), `{"connection_id":"`+c+`"}`)
	if err == nil {
		t.Fatal("a reset connection gave the client a response")
	}
	if !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("error %v is not a connection reset", err)
	}
	st := s.srv.Stats()
	if len(s.srv.State()) != 0 || st.Faults[FaultReset] != 1 || st.Count("POST", RouteEnabledConnections, 0) != 1 {
		t.Fatalf("state %v stats %v", s.srv.State(), st)
	}
	// Admin can turn it off.
	s.srv.SetFaults(Faults{})
	wantStatus(t, s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`), http.StatusCreated)
}

func TestFaultResetOverTLS(t *testing.T) {
	srv := New(Config{Seed: 56, Faults: Faults{Reset: 1}})
	ts := httptest.NewTLSServer(srv)
	t.Cleanup(ts.Close)
	req, err := http.NewRequest("GET", ts.URL+orgPath(srv.Orgs()[0]), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.IssueToken(DefaultScopes(), 0))
	client := ts.Client()
	client.Transport.(*http.Transport).DisableKeepAlives = true
	res, err := client.Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatal("a reset connection gave the client a response")
	}
	if !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("error %v is not a connection reset", err)
	}
}
