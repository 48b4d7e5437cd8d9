package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a throw-away Redis Cluster of redis-server processes on
// loopback ports, one master per node and no replicas.
type Cluster struct {
	// Addrs are the nodes' host:port.
	Addrs []string
	// URL names the cluster in orgconn's REDIS_URL form:
	// redis+cluster://node1?addr=node2&addr=node3.
	URL string
	// Client is connected to the cluster.
	Client *redis.ClusterClient
}

// NewCluster starts a cluster of n nodes (at least 3: Redis needs three
// masters) and registers its teardown: the processes are killed and their
// directories removed when the test ends. It skips the test when
// redis-server or redis-cli is not on PATH, unless ORGCONN_REDIS_CLUSTER=1,
// which makes that a failure.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	server, errS := exec.LookPath("redis-server")
	cli, errC := exec.LookPath("redis-cli")
	if errS != nil || errC != nil {
		if os.Getenv("ORGCONN_REDIS_CLUSTER") == "1" {
			t.Fatalf("ORGCONN_REDIS_CLUSTER=1 but redis-server or redis-cli is not on PATH")
		}
		t.Skip("redis-server and redis-cli are not on PATH: skipping the Redis Cluster test (apt-get install redis-server)")
	}
	c := &Cluster{}
	for i := range n {
		dir := t.TempDir()
		port, bus := freePort(t), freePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(server,
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(bus),
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000", "--dir", dir, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--protected-mode", "no")
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server node %d: %v", i, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("redis-server %s log:\n%s", addr, lastLines(log.String(), 20))
			}
		})
		c.Addrs = append(c.Addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range c.Addrs {
		waitPing(ctx, t, a)
	}
	create := exec.CommandContext(ctx, cli, append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range c.Addrs {
		waitClusterOK(ctx, t, a)
	}
	c.URL = "redis+cluster://" + c.Addrs[0]
	for i, a := range c.Addrs[1:] {
		c.URL += map[bool]string{true: "?", false: "&"}[i == 0] + "addr=" + a
	}
	c.Client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { c.Client.Close() })
	if err := c.Client.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() }); err != nil {
		t.Fatalf("redistest: the cluster does not answer: %v", err)
	}
	return c
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPing(ctx context.Context, t testing.TB, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for {
		if c.Ping(ctx).Err() == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redis-server at %s did not answer", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitClusterOK(ctx context.Context, t testing.TB, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	var info string
	for {
		info, _ = c.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster node %s is not ok: %s", addr, info)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// String describes the cluster for logs.
func (c *Cluster) String() string { return fmt.Sprintf("Redis Cluster %v", c.Addrs) }
