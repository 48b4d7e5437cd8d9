package redistest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ServerOptions shape a redis-server started by StartServer.
type ServerOptions struct {
	// AppendOnly turns on the append-only file with an fsync per write
	// (appendfsync always), so that a killed server loses nothing.
	AppendOnly bool
	// Password, if not empty, is required of clients (requirepass).
	Password string
	// TLS makes the server accept only TLS connections, with a
	// self-signed certificate made for the test.
	TLS bool
}

// Server is a redis-server process a test started on a free loopback port,
// with its own directory; it is stopped when the test ends. It can be
// killed and started again on the same port and directory.
type Server struct {
	t    testing.TB
	opts ServerOptions
	// Port is the loopback port the server listens on.
	Port int
	// Dir is the server's working directory (its append-only file).
	Dir string
	// CAFile is the PEM certificate clients trust when TLS is set.
	CAFile string
	// TLSConfig is a client TLS configuration trusting the server, or nil.
	TLSConfig *tls.Config

	mu     sync.Mutex
	all    []*exec.Cmd // every process started, killed at cleanup whatever happened
	cmd    *exec.Cmd
	exited chan struct{}
	log    *LockedBuffer
}

// LockedBuffer is a bytes.Buffer safe for a writing process (or command)
// and a reading test.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// HaveServer reports whether a redis-server binary is on PATH.
func HaveServer() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

// StartServer starts a redis-server on a free loopback port, or skips the
// test when there is no redis-server binary.
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if !HaveServer() {
		t.Skip("no redis-server on PATH")
	}
	s := &Server{t: t, opts: opts, Dir: t.TempDir(), Port: freePort(t)}
	if opts.TLS {
		s.makeCert()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis-server output:\n%s", s.Output())
		}
		s.Kill()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.all {
			c.Process.Kill() // an error means it is gone already
		}
	})
	s.Start()
	return s
}

// URL is the server's URL (redis:// or rediss://), with the password and
// the given database.
func (s *Server) URL(db int) string {
	scheme := "redis"
	if s.opts.TLS {
		scheme = "rediss"
	}
	auth := ""
	if s.opts.Password != "" {
		auth = ":" + s.opts.Password + "@"
	}
	return fmt.Sprintf("%s://%s127.0.0.1:%d/%d", scheme, auth, s.Port, db)
}

// Options are go-redis options for database db of the server.
func (s *Server) Options(db int) *redis.Options {
	return &redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.Port), Password: s.opts.Password, DB: db, TLSConfig: s.TLSConfig}
}

// Start starts the server (again) on its port and directory and waits until
// it answers.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.TryStart(); err != nil {
		s.t.Fatal(err)
	}
}

// TryStart is Start for goroutines other than the test's: it returns the
// error instead of failing the test.
func (s *Server) TryStart() error {
	args := []string{"--bind", "127.0.0.1", "--dir", s.Dir, "--save", "", "--daemonize", "no", "--protected-mode", "no"}
	if s.opts.TLS {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(s.Port),
			"--tls-cert-file", filepath.Join(s.Dir, "cert.pem"), "--tls-key-file", filepath.Join(s.Dir, "key.pem"),
			"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", strconv.Itoa(s.Port))
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	var lastErr error
	for try := 0; try < 50; try++ { // the port may linger a moment after a kill
		cmd := exec.Command("redis-server", args...)
		log := &LockedBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start redis-server: %v", err)
		}
		s.mu.Lock()
		s.all = append(s.all, cmd)
		s.mu.Unlock()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if lastErr = s.waitReady(exited); lastErr == nil {
			s.mu.Lock()
			s.cmd, s.exited, s.log = cmd, exited, log
			s.mu.Unlock()
			return nil
		}
		cmd.Process.Kill()
		<-exited
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on port %d did not start: %v", s.Port, lastErr)
}

func (s *Server) waitReady(exited <-chan struct{}) error {
	c := redis.NewClient(s.Options(0))
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends the server with SIGKILL (nothing is saved beyond what the
// append-only file already holds) and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// NewEnv returns an Env on database db of the server, with its own prefix
// and queue, cleaned up when the test ends.
func (s *Server) NewEnv(t testing.TB, db int) *Env {
	t.Helper()
	id := randomID()
	env := &Env{Prefix: "t" + id, Queue: "q" + id, Client: redis.NewClient(s.Options(db)), URL: s.URL(db)}
	t.Cleanup(func() {
		if s.Running() {
			env.cleanup(t)
		} else {
			env.Client.Close()
		}
	})
	return env
}

// NewReal returns an Env on a real Redis server: the one named by
// REDIS_URL, else a redis-server started for the test; it skips the test
// when neither is available.
func NewReal(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("REDIS_URL") != "" {
		return New(t)
	}
	return StartServer(t, ServerOptions{}).NewEnv(t, 0)
}

// makeCert writes a self-signed certificate for 127.0.0.1 and its key into
// the server's directory.
func (s *Server) makeCert() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		s.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		s.t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s.CAFile = filepath.Join(s.Dir, "cert.pem")
	if err := os.WriteFile(s.CAFile, certPEM, 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	s.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Output is what the running server (or the last one) wrote.
func (s *Server) Output() string {
	s.mu.Lock()
	log := s.log
	s.mu.Unlock()
	if log == nil {
		return ""
	}
	return log.String()
}
