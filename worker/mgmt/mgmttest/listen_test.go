package mgmttest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestListen(t *testing.T) {
	srv := New(Config{Seed: 60, Orgs: 2, Connections: 2})
	run, err := Listen("127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(run.URL()) {
		t.Fatalf("URL() = %q", run.URL())
	}

	// The whole client-credentials flow over TCP.
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {DefaultClientID},
		"client_secret": {DefaultClientSecret},
		"audience":      {run.Audience()},
	}
	res, err := http.PostForm(run.URL()+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenResponse
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || tok.ExpiresIn != 86400 {
		t.Fatalf("token: %d %v %+v", res.StatusCode, err, tok)
	}
	req, _ := http.NewRequest("POST", run.URL()+orgPath(srv.Orgs()[0]), strings.NewReader(`{"connection_id":"`+srv.Connections()[0].ID+`"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("POST: %d %s", res.StatusCode, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get(run.URL() + AdminStats); err == nil {
		t.Fatal("still serving after Close")
	}
}

func TestListenBadAddress(t *testing.T) {
	_, err := Listen("256.0.0.1:http-nope", New(Config{Orgs: -1}))
	if err == nil || !strings.Contains(err.Error(), "256.0.0.1:http-nope") {
		t.Fatalf("err = %v, want one naming the address", err)
	}
}
