package mgmt

import (
	"strings"
	"testing"
	"time"
)

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name    string
		domain  string
		want    string
		wantErr string // a part of the error text; "" means no error
	}{
		{"bare host", "acme.eu.auth0.com", "https://acme.eu.auth0.com", ""},
		{"bare host with spaces around", "  acme.eu.auth0.com\n", "https://acme.eu.auth0.com", ""},
		{"bare host with port", "acme.eu.auth0.com:8443", "https://acme.eu.auth0.com:8443", ""},
		{"https URL", "https://acme.eu.auth0.com", "https://acme.eu.auth0.com", ""},
		{"simulator URL", "http://127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"trailing slash", "https://acme.eu.auth0.com/", "https://acme.eu.auth0.com", ""},
		{"bare host with trailing slash", "acme.eu.auth0.com/", "https://acme.eu.auth0.com", ""},
		{"with path", "https://acme.eu.auth0.com/api/v2", "", "nothing after the host"},
		{"with query", "https://acme.eu.auth0.com?x=1", "", "nothing after the host"},
		{"with fragment", "https://acme.eu.auth0.com#top", "", "nothing after the host"},
		{"with user info", "https://admin:hunter2@acme.eu.auth0.com", "", "user info"},
		{"bare host with user info", "admin:hunter2@acme.eu.auth0.com", "", "user info"},
		{"ftp scheme", "ftp://acme.eu.auth0.com", "", `scheme "ftp", want https`},
		{"no host", "https://", "", "nothing after the host"},
		{"empty", "", "", "AUTH0_DOMAIN is empty"},
		{"blank", "   ", "", "AUTH0_DOMAIN is empty"},
		{"unparsable", "https://acme.eu.auth0.com:port", "", "is not a host or URL"},
		{"unparsable with a password", "https://admin:hunter2@acme.eu.auth0.com:port", "", "is not a host or URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BaseURL(tt.domain)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("BaseURL(%q) = %q, %v; want %q", tt.domain, got, err, tt.want)
				}
				return
			}
			if err == nil || got != "" {
				t.Fatalf("BaseURL(%q) = %q, %v; want an error", tt.domain, got, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

func TestNewChecksConfigAndFillsDefaults(t *testing.T) {
	if _, err := New(Config{Tokens: StaticToken("t")}); err == nil || !strings.Contains(err.Error(), "BaseURL") {
		t.Errorf("New without BaseURL: %v, want an error naming BaseURL", err)
	}
	if _, err := New(Config{BaseURL: "https://acme.eu.auth0.com"}); err == nil || !strings.Contains(err.Error(), "Tokens") {
		t.Errorf("New without Tokens: %v, want an error naming Tokens", err)
	}
	c, err := New(Config{BaseURL: "https://acme.eu.auth0.com//", Tokens: StaticToken("t")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c.base != "https://acme.eu.auth0.com" || c.timeout != 30*time.Second || c.userAgent != DefaultUserAgent || c.http == nil || c.http.Timeout != 30*time.Second || c.now == nil {
		t.Errorf("New filled base %q, timeout %v, user agent %q, http client %v; want the trimmed URL, 30s, DefaultUserAgent and a client with a 30s timeout",
			c.base, c.timeout, c.userAgent, c.http)
	}
}
