package mgmt

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	hdr := func(limit, remaining, reset string) http.Header {
		h := http.Header{}
		for name, v := range map[string]string{"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset} {
			if v != "-" {
				h.Set(name, v)
			}
		}
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		want RateLimit
	}{
		{"all three", hdr("50", "49", "1700000030"), RateLimit{Present: true, Limit: 50, Remaining: 49, Reset: time.Unix(1700000030, 0)}},
		{"spaces around values", hdr(" 10 ", " 0", "1700000000 "), RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: time.Unix(1700000000, 0)}},
		{"remaining above limit is kept as sent", hdr("5", "9", "1700000000"), RateLimit{Present: true, Limit: 5, Remaining: 9, Reset: time.Unix(1700000000, 0)}},
		{"reset zero", hdr("5", "5", "0"), RateLimit{Present: true, Limit: 5, Remaining: 5, Reset: time.Unix(0, 0)}},
		{"absurdly large reset is taken literally", hdr("5", "0", "99999999999999"), RateLimit{Present: true, Limit: 5, Remaining: 0, Reset: time.Unix(99999999999999, 0)}},
		{"none", http.Header{}, RateLimit{}},
		{"limit missing", hdr("-", "4", "1700000000"), RateLimit{}},
		{"remaining missing", hdr("5", "-", "1700000000"), RateLimit{}},
		{"reset missing", hdr("5", "4", "-"), RateLimit{}},
		{"limit not a number", hdr("ten", "4", "1700000000"), RateLimit{}},
		{"remaining a fraction", hdr("5", "4.5", "1700000000"), RateLimit{}},
		{"reset a fraction", hdr("5", "4", "1700000000.5"), RateLimit{}},
		{"reset an HTTP date", hdr("5", "4", "Tue, 14 Nov 2023 22:13:20 GMT"), RateLimit{}},
		{"negative limit", hdr("-1", "4", "1700000000"), RateLimit{}},
		{"negative remaining", hdr("5", "-1", "1700000000"), RateLimit{}},
		{"negative reset", hdr("5", "4", "-1700000000"), RateLimit{}},
		{"limit overflows", hdr("99999999999999999999", "4", "1700000000"), RateLimit{}},
		{"reset overflows", hdr("5", "4", "99999999999999999999"), RateLimit{}},
		{"empty values", hdr("", "", ""), RateLimit{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseRateLimit(tt.h); got != tt.want {
				t.Errorf("ParseRateLimit(%v) = %+v, want %+v", tt.h, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := epoch // Tue, 14 Nov 2023 22:13:20 UTC
	tests := []struct {
		name  string
		value string // "-" means no header
		want  time.Duration
	}{
		{"missing", "-", 0},
		{"empty", "", 0},
		{"seconds", "7", 7 * time.Second},
		{"seconds with spaces", " 7 ", 7 * time.Second},
		{"fractional seconds", "1.5", 1500 * time.Millisecond},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"a day is the most", "86400", 24 * time.Hour},
		{"absurdly large seconds", "86401", 0},
		{"huge exponent", "1e300", 0},
		{"infinity", "Inf", 0},
		{"not a number", "NaN", 0},
		{"malformed", "soon", 0},
		{"HTTP date", "Tue, 14 Nov 2023 22:13:50 GMT", 30 * time.Second},
		{"RFC 850 date", "Tuesday, 14-Nov-23 22:14:20 GMT", time.Minute},
		{"ANSI C date", "Tue Nov 14 22:13:25 2023", 5 * time.Second},
		{"date now", "Tue, 14 Nov 2023 22:13:20 GMT", 0},
		{"date in the past", "Tue, 14 Nov 2023 22:00:00 GMT", 0},
		{"date a day ahead", "Wed, 15 Nov 2023 22:13:20 GMT", 24 * time.Hour},
		{"absurdly far date", "Fri, 01 Jan 2100 00:00:00 GMT", 0},
		{"malformed date", "Tue, 14 Nov 2023 25:61:00 GMT", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "-" {
				h.Set("Retry-After", tt.value)
			}
			if got := ParseRetryAfter(h, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  APIError
		want string
	}{
		{"everything", APIError{Method: "POST", Path: "/organizations/o/enabled_connections", Status: 409, Reason: "Conflict", ErrorCode: "connection_already_enabled", Message: "The connection is already enabled for this organization."},
			"POST /organizations/o/enabled_connections: 409 Conflict (connection_already_enabled): The connection is already enabled for this organization."},
		{"no error code", APIError{Method: "GET", Path: "/p", Status: 404, Reason: "Not Found", Message: "No connection found by that id"},
			"GET /p: 404 Not Found: No connection found by that id"},
		{"no reason falls back to the status text", APIError{Method: "DELETE", Path: "/p", Status: 502}, "DELETE /p: 502 Bad Gateway"},
		{"unknown status without a reason", APIError{Method: "GET", Path: "/p", Status: 599}, "GET /p: 599"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"API error", &APIError{Status: 429}, 429},
		{"wrapped API error", fmt.Errorf("task t1: %w", &APIError{Status: 404}), 404},
		{"token error", &TokenError{Status: 401, Reason: "access_denied: Unauthorized"}, 401},
		{"token error without an answer", &TokenError{Reason: "dial tcp: refused"}, 0},
		{"network error", &NetworkError{Method: "GET", Path: "/p", Err: errors.New("EOF")}, 0},
		{"other error", errors.New("boom"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusOf(tt.err); got != tt.want {
				t.Errorf("StatusOf(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestNetworkErrorUnwrapsItsCause(t *testing.T) {
	cause := errors.New("connection reset by peer")
	err := fmt.Errorf("task t1: %w", &NetworkError{Method: "POST", Path: "/p", Err: cause})
	var ne *NetworkError
	if !errors.As(err, &ne) || !errors.Is(err, cause) {
		t.Fatalf("errors.As/Is through %v failed", err)
	}
	if want := "task t1: POST /p: no response: connection reset by peer"; err.Error() != want {
		t.Errorf("text %q, want %q", err.Error(), want)
	}
}

func TestTemporaryAndNotFound(t *testing.T) {
	for status, want := range map[int]bool{400: false, 401: false, 403: false, 404: false, 408: true, 409: false, 429: true, 500: true, 502: true, 503: true} {
		e := &APIError{Status: status}
		if e.Temporary() != want {
			t.Errorf("APIError %d: Temporary() = %v, want %v", status, e.Temporary(), want)
		}
		if e.Throttled() != (status == 429) {
			t.Errorf("APIError %d: Throttled() = %v", status, e.Throttled())
		}
		if e.NotFound() != (status == 404) {
			t.Errorf("APIError %d: NotFound() = %v", status, e.NotFound())
		}
	}
	if !(&NetworkError{Err: errors.New("reset")}).Temporary() {
		t.Error("a NetworkError is not temporary")
	}
	for status, want := range map[int]bool{0: true, 401: false, 403: false, 429: true, 503: true} {
		if got := (&TokenError{Status: status}).Temporary(); got != want {
			t.Errorf("TokenError %d: Temporary() = %v, want %v", status, got, want)
		}
	}
}
