package mgmttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts of the http.Server that Listen starts. WriteTimeout leaves room for injected latency
// of up to about a minute.
const (
	ListenReadHeaderTimeout = 10 * time.Second
	ListenReadTimeout       = 30 * time.Second
	ListenWriteTimeout      = 90 * time.Second
	ListenIdleTimeout       = 2 * time.Minute
)

// Running is a simulator served over TCP by Listen.
type Running struct {
	srv  *http.Server
	url  string
	done chan struct{}

	mu       sync.Mutex
	serveErr error
}

// Listen serves s on addr (for example "127.0.0.1:0" for a free loopback port) until Close.
// It returns once the listener is open, so URL is immediately usable. The admin endpoints are
// unauthenticated: use a loopback address.
func Listen(addr string, s *Server) (*Running, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mgmttest: listening on %q: %w", addr, err)
	}
	run := &Running{
		srv: &http.Server{
			Handler:           s,
			ReadHeaderTimeout: ListenReadHeaderTimeout,
			ReadTimeout:       ListenReadTimeout,
			WriteTimeout:      ListenWriteTimeout,
			IdleTimeout:       ListenIdleTimeout,
		},
		url:  "http://" + ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(run.done)
		if err := run.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			run.mu.Lock()
			run.serveErr = err
			run.mu.Unlock()
		}
	}()
	return run, nil
}

// URL returns the base URL, "http://HOST:PORT", without a trailing slash.
func (r *Running) URL() string { return r.url }

// Audience returns the Management API audience /oauth/token accepts: URL() + "/api/v2/".
func (r *Running) Audience() string { return r.url + "/api/v2/" }

// Close stops accepting requests and waits, until ctx ends, for those in flight; then it closes
// whatever is left. It returns the error that stopped serving, if any, or the shutdown error.
func (r *Running) Close(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	if err != nil {
		_ = r.srv.Close()
		err = fmt.Errorf("mgmttest: shutting down %s: %w", r.url, err)
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.serveErr != nil {
		return fmt.Errorf("mgmttest: serving %s: %w", r.url, r.serveErr)
	}
	return err
}
