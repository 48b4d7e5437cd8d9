package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of a /v1/changes request:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>". Several
// v1= values may be given (one per secret during a rotation).
const SignatureHeader = "X-Orgconn-Signature"

// DefaultSignatureTolerance is how far a signature's timestamp may be from
// the server's clock, either way.
const DefaultSignatureTolerance = 5 * time.Minute

// maxSignatures bounds the v1= values examined, so that a header cannot make
// the server compute MACs without end.
const maxSignatures = 8

// Why a signature is refused. The messages go into 401 responses: they say
// which check failed and never anything about the secrets.
var (
	ErrSignatureMissing   = errors.New("the " + SignatureHeader + " header is missing: sign the request (see the documentation)")
	ErrSignatureMalformed = errors.New("the " + SignatureHeader + " header is malformed: want t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">")
	ErrSignatureStale     = errors.New("the signature's timestamp is too far from the server's time: sign each request when sending it, and check the sender's clock")
	ErrSignatureMismatch  = errors.New("the signature does not match the body: check the secret, and sign the exact bytes sent")
)

// Sign returns the SignatureHeader value for body signed with secret at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac([]byte(secret), ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks header (the SignatureHeader value) against body:
// its timestamp must be within tolerance of now and one of its v1= values
// must equal the HMAC under one of secrets (compared in constant time). It
// returns nil or one of the ErrSignature… errors.
func VerifySignature(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	if strings.TrimSpace(header) == "" {
		return ErrSignatureMissing
	}
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrSignatureMalformed
			}
			ts = v
		case "v1":
			if len(sigs) == maxSignatures {
				return ErrSignatureMalformed
			}
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrSignatureMalformed
			}
			sigs = append(sigs, sig)
		default:
			// Other schemes (a future v2) are skipped.
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMalformed
	}
	if tol := int64(tolerance / time.Second); t < now.Unix()-tol || t > now.Unix()+tol {
		return ErrSignatureStale
	}
	ok := false
	for _, secret := range secrets {
		want := mac(secret, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				ok = true // keep going: the time taken does not depend on which matched
			}
		}
	}
	if !ok {
		return ErrSignatureMismatch
	}
	return nil
}

// checkSecrets refuses an empty secret list or an empty secret.
func checkSecrets(secrets []string) error {
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("secret %d of %d is empty", i+1, len(secrets))
		}
	}
	return nil
}
