package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// IdempotencyHeader names the client's idempotency key; ReplayedHeader marks
// a response replayed from the idempotency store.
const (
	IdempotencyHeader = "Idempotency-Key"
	ReplayedHeader    = "Idempotent-Replayed"
)

// DefaultIdempotencyTTL is how long the first response to an idempotency
// key is kept and replayed.
const DefaultIdempotencyTTL = 24 * time.Hour

// maxIdempotencyKey bounds the key's length in bytes.
const maxIdempotencyKey = 255

// checkIdempotencyKey returns what is wrong with a client's key, or "".
func checkIdempotencyKey(k string) string {
	if k == "" || len(k) > maxIdempotencyKey {
		return fmt.Sprintf("must be 1 to %d characters", maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < ' ' || c > '~' {
			return "must be printable ASCII, e.g. a UUID"
		}
	}
	return ""
}

// idemRecord is what the store keeps per key: the request's body hash, and
// once the first request has finished, its response.
type idemRecord struct {
	State      string `json:"state"` // idemPending or idemDone
	BodySHA256 string `json:"body_sha256"`
	Status     int    `json:"status,omitempty"`
	Body       []byte `json:"body,omitempty"`
}

const (
	idemPending = "pending"
	idemDone    = "done"
)

// idemStore keeps idempotency records in Redis under
// "<prefix>:idem:<sha256 of key>", a key under the ledger's hash tag.
type idemStore struct {
	rdb redis.UniversalClient
	// prefix is the ledger's prefix including its hash tag.
	prefix string
	// ttl is how long a finished record is kept.
	ttl time.Duration
	// pendingTTL is how long an unfinished claim is kept: a server that dies
	// mid-request blocks the key for no longer than this.
	pendingTTL time.Duration
}

func (s *idemStore) key(clientKey string) string {
	h := sha256.Sum256([]byte(clientKey))
	return s.prefix + ":idem:" + hex.EncodeToString(h[:])
}

// claim records that a request with clientKey and bodyHash is under way. It
// returns nil when the caller now owns the key, else the record found: a
// request with the key still under way, or finished with its response.
func (s *idemStore) claim(ctx context.Context, clientKey, bodyHash string) (*idemRecord, error) {
	k := s.key(clientKey)
	mine, err := json.Marshal(idemRecord{State: idemPending, BodySHA256: bodyHash})
	if err != nil {
		return nil, err
	}
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, k, mine, s.pendingTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("claim idempotency key: %w", err)
		}
		if ok {
			return nil, nil
		}
		data, err := s.rdb.Get(ctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // expired in between: claim again
		}
		if err != nil {
			return nil, fmt.Errorf("read idempotency key: %w", err)
		}
		var rec idemRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fmt.Errorf("read idempotency key: %w", err)
		}
		return &rec, nil
	}
	return nil, errors.New("claim idempotency key: the key keeps expiring; try again")
}

// finish stores the response to the owned key for ttl.
func (s *idemStore) finish(ctx context.Context, clientKey, bodyHash string, status int, body []byte) error {
	data, err := json.Marshal(idemRecord{State: idemDone, BodySHA256: bodyHash, Status: status, Body: body})
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.key(clientKey), data, s.ttl).Err(); err != nil {
		return fmt.Errorf("store idempotent response: %w", err)
	}
	return nil
}

// abandon releases the owned key, so that the client can try again.
func (s *idemStore) abandon(ctx context.Context, clientKey string) error {
	if err := s.rdb.Del(ctx, s.key(clientKey)).Err(); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
