package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSignMatchesTheDocumentedRecipe(t *testing.T) {
	// printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" -hex
	at := time.Unix(1767225600, 0)
	body := []byte(`{"action":"remove","org_id":"org_1","connection_id":"con_1"}`)
	m := hmac.New(sha256.New, []byte("s3cret"))
	fmt.Fprintf(m, "%d.%s", at.Unix(), body)
	want := fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(m.Sum(nil)))
	if got := Sign("s3cret", at, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"x":1}`)
	secrets := [][]byte{[]byte("current"), []byte("next")}
	good := Sign("current", now, body)
	v1 := func(secret string, at time.Time) string { return strings.SplitN(Sign(secret, at, body), ",", 2)[1] }
	ts := fmt.Sprintf("t=%d", now.Unix())
	for _, tc := range []struct {
		name, header string
		want         error
	}{
		{"good", good, nil},
		{"the next secret", Sign("next", now, body), nil},
		{"several v1, one good", ts + "," + v1("wrong", now) + "," + v1("next", now), nil},
		{"spaces and an unknown scheme", ts + ", v0=abc, " + v1("current", now), nil},
		{"upper-case hex", ts + ",v1=" + strings.ToUpper(strings.TrimPrefix(v1("current", now), "v1=")), nil},
		{"4m59s old", Sign("current", now.Add(-299*time.Second), body), nil},
		{"5m01s old", Sign("current", now.Add(-301*time.Second), body), ErrSignatureStale},
		{"5m01s ahead", Sign("current", now.Add(301*time.Second), body), ErrSignatureStale},
		{"empty", "", ErrSignatureMissing},
		{"wrong secret", Sign("wrong", now, body), ErrSignatureMismatch},
		{"t of another time", fmt.Sprintf("t=%d,", now.Unix()-1) + v1("current", now), ErrSignatureMismatch},
		{"no v1", ts, ErrSignatureMalformed},
		{"no t", v1("current", now), ErrSignatureMalformed},
		{"two t", ts + "," + ts + "," + v1("current", now), ErrSignatureMalformed},
		{"t not a number", "t=soon," + v1("current", now), ErrSignatureMalformed},
		{"huge t", "t=99999999999999999999," + v1("current", now), ErrSignatureMalformed},
		{"min t", "t=-9223372036854775808," + v1("current", now), ErrSignatureStale},
		{"v1 not hex", ts + ",v1=zz", ErrSignatureMalformed},
		{"v1 too short", ts + ",v1=abcd", ErrSignatureMalformed},
		{"no =", "garbage", ErrSignatureMalformed},
		{"too many v1", ts + strings.Repeat(","+v1("wrong", now), maxSignatures+1), ErrSignatureMalformed},
	} {
		if err := VerifySignature(tc.header, body, secrets, now, DefaultSignatureTolerance); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := VerifySignature(good, body, nil, now, DefaultSignatureTolerance); err != ErrSignatureMismatch {
		t.Errorf("no secrets: %v", err)
	}
}
