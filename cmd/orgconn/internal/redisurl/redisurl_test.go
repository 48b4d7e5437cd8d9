package redisurl

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		url  string
		kind string // "single", "failover", "cluster" or "" for an error
		want string // substring of the error
	}{
		{"redis://127.0.0.1:6379/0", "single", ""},
		{"rediss://user:pw@redis.example:6380/2", "single", ""},
		{"redis+sentinel://s1:26379?master_name=mymaster&addr=s2:26379", "failover", ""},
		{"redis+sentinel://s1:26379", "", "master_name"},
		{"redis+cluster://n1:6379?addr=n2:6379&addr=n3:6379", "cluster", ""},
		{"http://x", "", "scheme"},
		{"redis+ring://x", "", "unknown mode"},
		{"redis://:s3cret@host:6379/notanumber", "", "invalid"},
	} {
		c, err := Open(tc.url)
		if tc.kind == "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) error = %v, want one containing %q", tc.url, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open(%q) error shows the password: %v", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q) = %v", tc.url, err)
			continue
		}
		var kind string
		switch c.(type) {
		case *redis.Client:
			kind = "single"
			if strings.HasPrefix(tc.url, "redis+sentinel") {
				kind = "failover"
			}
		case *redis.ClusterClient:
			kind = "cluster"
		}
		if kind != tc.kind {
			t.Errorf("Open(%q) gave a %T, want %s", tc.url, c, tc.kind)
		}
		c.Close()
	}
	if got := Redacted("redis://:s3cret@h:1/0"); strings.Contains(got, "s3cret") {
		t.Errorf("Redacted = %q", got)
	}
}
