// Package redisurl opens the Redis named by a REDIS_URL.
//
// Forms (rediss instead of redis means TLS):
//
//	redis://[user:password@]host:port[/db]
//	redis+sentinel://[user:password@]sentinel1:26379?master_name=mymaster&addr=sentinel2:26379[&db=N]
//	redis+cluster://[user:password@]node1:6379?addr=node2:6379&addr=node3:6379
//
// Query parameters are go-redis's (dial_timeout, read_timeout, pool_size, …).
// In a sentinel URL the user and password before the host are the
// sentinels'; the master's are given as username= and password= parameters.
package redisurl

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Default is the REDIS_URL used when none is given.
const Default = "redis://127.0.0.1:6379/0"

// Open returns a client for rawURL. The client does not connect until used.
func Open(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %v", redact(err, rawURL))
	}
	base, mode, _ := strings.Cut(u.Scheme, "+")
	if base != "redis" && base != "rediss" && base != "unix" {
		return nil, fmt.Errorf("REDIS_URL scheme %q: want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster", u.Scheme)
	}
	plain := strings.Replace(rawURL, u.Scheme+"://", base+"://", 1)
	switch mode {
	case "":
		opt, err := redis.ParseURL(plain)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %v", redact(err, rawURL))
		}
		return redis.NewClient(opt), nil
	case "sentinel":
		opt, err := redis.ParseFailoverURL(plain)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (sentinel): %v", redact(err, rawURL))
		}
		if opt.MasterName == "" {
			return nil, fmt.Errorf("REDIS_URL (sentinel): add ?master_name=<name of the monitored master>")
		}
		return redis.NewFailoverClient(opt), nil
	case "cluster":
		opt, err := redis.ParseClusterURL(plain)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (cluster): %v", redact(err, rawURL))
		}
		return redis.NewClusterClient(opt), nil
	}
	return nil, fmt.Errorf("REDIS_URL scheme %q: unknown mode %q (want sentinel or cluster)", u.Scheme, mode)
}

// redact removes the URL's password from an error message.
func redact(err error, rawURL string) string {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// Redacted returns rawURL with its password replaced, for logs.
func Redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable REDIS_URL)"
	}
	return u.Redacted()
}
