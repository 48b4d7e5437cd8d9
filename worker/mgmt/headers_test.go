package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorded is one request a recorder received.
type recorded struct {
	method string
	path   string // escaped
	query  string
	header http.Header
	body   string
}

// recorder records every request and answers each of the five calls with
// its success status and a minimal body; answer, when set, overrides that.
type recorder struct {
	answer func(w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []recorded
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(body)})
	rec.mu.Unlock()
	if rec.answer != nil {
		rec.answer(w, r)
		return
	}
	const one = `{"connection_id":"con_1","assign_membership_on_login":false,"show_as_button":true,"is_signup_enabled":false,"connection":{"name":"c","strategy":"samlp"}}`
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/enabled_connections"):
		_, _ = io.WriteString(w, `{"enabled_connections":[],"start":0,"limit":0,"total":0}`)
	case r.Method == http.MethodGet, r.Method == http.MethodPatch:
		_, _ = io.WriteString(w, one)
	case r.Method == http.MethodPost:
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, one)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (rec *recorder) take() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	reqs := rec.reqs
	rec.reqs = nil
	return reqs
}

func TestRequestsCarryTheRightHeadersAndBody(t *testing.T) {
	bodies := map[string]string{
		"Enable": `{"connection_id":"con_1"}`,
		"Update": `{"show_as_button":false}`,
	}
	for _, ua := range []struct{ name, configured, want string }{
		{"default user agent", "", DefaultUserAgent},
		{"configured user agent", "orgconn/1.4.2 (batch)", "orgconn/1.4.2 (batch)"},
	} {
		for _, corr := range []string{"", "task-42"} {
			for _, k := range allCalls {
				t.Run(ua.name+"/correlation "+corr+"/"+k.name, func(t *testing.T) {
					rec := &recorder{}
					c := newClient(t, Config{BaseURL: serve(t, rec), Tokens: StaticToken("tok-abc"), UserAgent: ua.configured})
					ctx := context.Background()
					if corr != "" {
						ctx = WithCorrelationID(ctx, corr)
					}
					if err := k.run(ctx, c, "org_1", "con_1"); err != nil {
						t.Fatalf("%s: %v", k.name, err)
					}
					reqs := rec.take()
					if len(reqs) != 1 {
						t.Fatalf("%d requests, want 1", len(reqs))
					}
					r := reqs[0]
					if r.method != k.method || r.path != "/api/v2"+k.path("org_1", "con_1") {
						t.Errorf("request %s %s, want %s /api/v2%s", r.method, r.path, k.method, k.path("org_1", "con_1"))
					}
					wantCorr, wantType := "", ""
					if k.class == Write {
						wantCorr = corr
					}
					if bodies[k.name] != "" {
						wantType = "application/json"
					}
					for _, h := range []struct{ name, want string }{
						{"Authorization", "Bearer tok-abc"},
						{"User-Agent", ua.want},
						{"Accept", "application/json"},
						{"Content-Type", wantType},
						{"X-Correlation-ID", wantCorr},
					} {
						if got := r.header.Get(h.name); got != h.want {
							t.Errorf("%s: %q, want %q", h.name, got, h.want)
						}
					}
					if r.body != bodies[k.name] {
						t.Errorf("body %q, want %q", r.body, bodies[k.name])
					}
				})
			}
		}
	}
}

func TestEnableAndUpdateSendOnlyTheGivenFlags(t *testing.T) {
	tests := []struct {
		name     string
		settings Settings
		enable   string
		update   string
	}{
		{"one flag", Settings{ShowAsButton: ptr(true)}, `{"connection_id":"con_1","show_as_button":true}`, `{"show_as_button":true}`},
		{"false is sent", Settings{AssignMembershipOnLogin: ptr(false)}, `{"connection_id":"con_1","assign_membership_on_login":false}`, `{"assign_membership_on_login":false}`},
		{"all flags", Settings{AssignMembershipOnLogin: ptr(true), IsSignupEnabled: ptr(true), ShowAsButton: ptr(false)},
			`{"connection_id":"con_1","assign_membership_on_login":true,"is_signup_enabled":true,"show_as_button":false}`,
			`{"assign_membership_on_login":true,"is_signup_enabled":true,"show_as_button":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			c := newClient(t, Config{BaseURL: serve(t, rec), Tokens: StaticToken("tok")})
			if _, err := c.Enable(context.Background(), "org_1", "con_1", tt.settings); err != nil {
				t.Fatalf("Enable: %v", err)
			}
			if _, err := c.Update(context.Background(), "org_1", "con_1", tt.settings); err != nil {
				t.Fatalf("Update: %v", err)
			}
			reqs := rec.take()
			for i, want := range []string{tt.enable, tt.update} {
				var got, exp map[string]any
				if err := json.Unmarshal([]byte(reqs[i].body), &got); err != nil {
					t.Fatalf("%s body %q: %v", reqs[i].method, reqs[i].body, err)
				}
				_ = json.Unmarshal([]byte(want), &exp)
				if !reflect.DeepEqual(got, exp) {
					t.Errorf("%s body %s, want %s", reqs[i].method, reqs[i].body, want)
				}
			}
		})
	}
}

func TestUpdateWithoutAnySettingSendsNoRequest(t *testing.T) {
	rec := &recorder{}
	c := newClient(t, Config{BaseURL: serve(t, rec), Tokens: StaticToken("tok")})
	_, err := c.Update(context.Background(), "org_1", "con_1", Settings{})
	if err == nil || StatusOf(err) != 0 {
		t.Fatalf("Update with no settings: %v, want an error without a status", err)
	}
	if reqs := rec.take(); len(reqs) != 0 {
		t.Errorf("%d requests sent, want none", len(reqs))
	}
}

func TestCorrelationIDIsCutTo64Characters(t *testing.T) {
	long := strings.Repeat("0123456789", 10)
	tests := []struct{ name, id, want string }{
		{"short", "task-1", "task-1"},
		{"exactly 64", long[:64], long[:64]},
		{"100 cut to 64", long, long[:64]},
		{"empty sends none", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			c := newClient(t, Config{BaseURL: serve(t, rec), Tokens: StaticToken("tok")})
			if err := c.Remove(WithCorrelationID(context.Background(), tt.id), "org_1", "con_1"); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			r := rec.take()[0]
			if got := r.header.Get("X-Correlation-ID"); got != tt.want {
				t.Errorf("X-Correlation-ID %q, want %q", got, tt.want)
			}
			if _, sent := r.header["X-Correlation-Id"]; sent != (tt.want != "") {
				t.Errorf("header sent: %v, want %v", sent, tt.want != "")
			}
		})
	}
}

// TestHostileIDsSendNoRequest checks every path builder, through every call,
// with ids that would change the path's meaning: a dot segment ("..": one
// resolution away from DELETE /organizations/org_1), a separator, an
// escape, a query or fragment, nothing, or a character outside the set.
func TestHostileIDsSendNoRequest(t *testing.T) {
	hostile := []string{".", "..", "a/b", "%2e%2e", "a?b", "a#b", "", "é", "org_1/..", "a b", "a\x00b", "a;b", "a\\b", "ｏｒｇ_1"}
	for _, k := range allCalls {
		for _, id := range hostile {
			for _, which := range []string{"org", "conn"} {
				if which == "conn" && k.name == "List" {
					continue // List takes no connection id
				}
				org, conn := "org_1", "con_1"
				if which == "org" {
					org = id
				} else {
					conn = id
				}
				t.Run(fmt.Sprintf("%s/%s %q", k.name, which, id), func(t *testing.T) {
					rec := &recorder{}
					c := newClient(t, Config{BaseURL: serve(t, rec), Tokens: StaticToken("tok")})
					err := k.run(context.Background(), c, org, conn)
					var bad *InvalidIDError
					if !errors.As(err, &bad) {
						t.Fatalf("%s(%q, %q) = %v, want an *InvalidIDError", k.name, org, conn, err)
					}
					if bad.ID != id || !strings.Contains(err.Error(), `only letters, digits, "_" and "-" are allowed`) {
						t.Errorf("error %q (id %q), want it to name %q and the allowed characters", err, bad.ID, id)
					}
					if reqs := rec.take(); len(reqs) != 0 {
						t.Errorf("%d requests sent (%s %s), want none", len(reqs), reqs[0].method, reqs[0].path)
					}
				})
			}
		}
	}
	// ListAll refuses before its first page.
	rec := &recorder{}
	c := newClient(t, Config{BaseURL: serve(t, rec), Tokens: StaticToken("tok")})
	var bad *InvalidIDError
	if _, err := c.ListAll(context.Background(), ".."); !errors.As(err, &bad) || len(rec.take()) != 0 {
		t.Errorf("ListAll(\"..\") = %v, want an *InvalidIDError and no request", err)
	}
}

func TestPathBuilders(t *testing.T) {
	for _, tt := range []struct {
		org, conn string
		want      string
	}{
		{"org_A1b2C3d4E5f6G7h8", "con_DbPw0000000000001", "/organizations/org_A1b2C3d4E5f6G7h8/enabled_connections/con_DbPw0000000000001"},
		{"acme-1", "google-oauth2", "/organizations/acme-1/enabled_connections/google-oauth2"},
	} {
		if got, err := connPath(tt.org, tt.conn); got != tt.want || err != nil {
			t.Errorf("connPath(%q, %q) = %q, %v; want %q", tt.org, tt.conn, got, err, tt.want)
		}
		if got, err := orgPath(tt.org); got != strings.TrimSuffix(tt.want, "/"+tt.conn) || err != nil {
			t.Errorf("orgPath(%q) = %q, %v", tt.org, got, err)
		}
	}
	long := strings.Repeat("x", 300)
	if _, err := orgPath(long + "/"); err == nil || len(err.Error()) > 200 {
		t.Errorf("orgPath(300 characters and a slash) error %v, want a short one", err)
	}
}

func TestAnswerWithoutAnAuth0BodyIsStillAnAPIError(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		want   APIError
		text   string
	}{
		{"503 with an HTML body", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "<html>upstream down</html>")
		}, APIError{Method: "GET", Path: "/organizations/org_1/enabled_connections/con_1", Status: 503},
			"GET /organizations/org_1/enabled_connections/con_1: 503 Service Unavailable"},
		{"429 with Retry-After and rate-limit headers", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("X-RateLimit-Limit", "50")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", "1700000030")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"}`)
		}, APIError{Method: "GET", Path: "/organizations/org_1/enabled_connections/con_1", Status: 429, Reason: "Too Many Requests",
			ErrorCode: "too_many_requests", Message: "Global limit has been reached", RetryAfter: 7 * time.Second,
			RateLimit: RateLimit{Present: true, Limit: 50, Remaining: 0, Reset: time.Unix(1700000030, 0)}},
			"GET /organizations/org_1/enabled_connections/con_1: 429 Too Many Requests (too_many_requests): Global limit has been reached"},
		{"an unexpected success status", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusAccepted)
		}, APIError{Method: "GET", Path: "/organizations/org_1/enabled_connections/con_1", Status: 202},
			"GET /organizations/org_1/enabled_connections/con_1: 202 Accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &recordingPacer{}
			c := newClient(t, Config{BaseURL: serve(t, &recorder{answer: tt.answer}), Tokens: StaticToken("tok"), Pacer: p, Now: func() time.Time { return epoch }})
			_, err := c.Get(context.Background(), "org_1", "con_1")
			wantAPIError(t, err, tt.want)
			if err.Error() != tt.text {
				t.Errorf("error text %q, want %q", err.Error(), tt.text)
			}
			calls := p.take()
			want := Exchange{Class: Read, Method: "GET", Status: tt.want.Status, RateLimit: tt.want.RateLimit, RetryAfter: tt.want.RetryAfter, Sent: epoch, Received: epoch}
			if len(calls) != 2 || calls[1].ex != want {
				t.Errorf("pacer calls %+v, want Wait then Observe(%+v)", calls, want)
			}
		})
	}
}

func TestSuccessWithAnUndecodableBodyIsAnError(t *testing.T) {
	c := newClient(t, Config{BaseURL: serve(t, &recorder{answer: func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "<html>not json</html>")
	}}), Tokens: StaticToken("tok")})
	_, err := c.Get(context.Background(), "org_1", "con_1")
	if err == nil || StatusOf(err) != 0 || !strings.Contains(err.Error(), "decode 200 response") {
		t.Errorf("error %v, want a decode error without a status", err)
	}
}

func TestCorrelationIDIsMadeAValidHeader(t *testing.T) {
	ctx := WithCorrelationID(context.Background(), "batch:1\r\nX-Evil: 1\x00é")
	got, _ := ctx.Value(correlationKey{}).(string)
	if want := "batch:1__X-Evil: 1__"; got != want {
		t.Fatalf("correlation id = %q, want %q", got, want)
	}
}
