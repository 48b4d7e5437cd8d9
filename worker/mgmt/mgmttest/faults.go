package mgmttest

import (
	"context"
	"net"
	"net/http"
	"time"
)

// SetFaults replaces the injected faults while the server runs; requests already past a
// decision keep it.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Faults = f
}

// currentFaults returns the faults in force.
func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Faults
}

// chance reports true with probability p, drawing from the seeded source only when p is
// strictly between 0 and 1.
func (s *Server) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < p
}

// latency returns the injected latency for one request: Latency plus a uniform draw in
// [0, Jitter).
func (s *Server) latency(f Faults) time.Duration {
	d := max(f.Latency, 0)
	if f.Jitter > 0 {
		s.rngMu.Lock()
		d += time.Duration(s.rng.Int64N(int64(f.Jitter)))
		s.rngMu.Unlock()
	}
	return d
}

// delay waits the injected latency in real time. It reports false when ctx ended first.
func (s *Server) delay(ctx context.Context) bool {
	d := s.latency(s.currentFaults())
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// beforeApply decides the faults injected after rate limiting, drawn in this order: a 503, a
// 500, an HTML 502, a dropped connection, a reset connection. ok is false when one was chosen.
// Called with s.mu held (the faults are read from s.cfg).
func (s *Server) beforeApply() (res result, ok bool) {
	f := s.cfg.Faults
	if s.chance(f.Error5xx) {
		res = fail(http.StatusServiceUnavailable, msgUnavailable, "")
		res.fault = FaultError5xx
		return res, false
	}
	if s.chance(f.Error500) {
		res = fail(http.StatusInternalServerError, msgInternal, "")
		res.fault = FaultError500
		return res, false
	}
	if s.chance(f.HTML502) {
		return result{status: http.StatusBadGateway, body: badGatewayPage, html: true, fault: FaultHTML502}, false
	}
	if s.chance(f.Drop) {
		return result{hangUp: true, fault: FaultDrop}, false
	}
	if s.chance(f.Reset) {
		return result{hangUp: true, fault: FaultReset}, false
	}
	return result{}, true
}

// badGatewayPage is the body of the HTML 502 fault: what a load balancer sends when the API
// behind it does not answer.
const badGatewayPage = `<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
</body>
</html>
`

// loseResponse decides whether the response to an applied write is lost. Called with s.mu held.
func (s *Server) loseResponse() bool { return s.chance(s.cfg.Faults.LostResponse) }

// hangUp closes the client connection without writing a response; with reset it sends a TCP
// RST instead of a FIN (SetLinger(0) before Close, on the TCP connection beneath TLS), so the
// client reads "connection reset by peer". It hijacks the connection when the ResponseWriter allows it (HTTP/1.x through
// net/http); otherwise it panics with http.ErrAbortHandler, which net/http turns into an
// aborted response without logging.
func hangUp(w http.ResponseWriter, reset bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if reset {
		// Under TLS, reset the TCP connection beneath, without the close_notify alert a
		// tls.Conn's Close would send first (the client would read a clean EOF).
		if tlsConn, ok := conn.(interface{ NetConn() net.Conn }); ok {
			conn = tlsConn.NetConn()
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
	}
	_ = conn.Close()
}
