package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// Timeouts and limits of the http.Server made by NewServer.
const (
	ServerReadHeaderTimeout = 5 * time.Second
	ServerReadTimeout       = 30 * time.Second
	ServerWriteTimeout      = 60 * time.Second
	ServerIdleTimeout       = 2 * time.Minute
	ServerMaxHeaderBytes    = 32 << 10
)

// NewServer returns an http.Server for h on addr with read, write and idle
// timeouts and a header size limit; its own errors go to log.
func NewServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ServerReadHeaderTimeout,
		ReadTimeout:       ServerReadTimeout,
		WriteTimeout:      ServerWriteTimeout,
		IdleTimeout:       ServerIdleTimeout,
		MaxHeaderBytes:    ServerMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// errorBody is the body of every error response.
type errorBody struct {
	Error   string    `json:"error"`
	Problem string    `json:"problem,omitempty"`
	Errors  []Problem `json:"errors,omitempty"`
}

func writeError(w http.ResponseWriter, status int, short, problem string) {
	writeJSON(w, status, errorBody{Error: short, Problem: problem})
}

// encodeJSON encodes v as a response body (ending in a newline).
func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"internal error"}`)
	}
	return append(b, '\n')
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, encodeJSON(v))
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// allowPost answers 405 unless r is a POST.
func allowPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", "POST")
	writeError(w, http.StatusMethodNotAllowed, "method not allowed", "use POST")
	return false
}

// jsonTypes are the media types accepted on the changes endpoint; events
// also accept the CloudEvents structured and batch types.
var (
	jsonTypes  = map[string]bool{"application/json": true}
	eventTypes = map[string]bool{"application/json": true, "application/cloudevents+json": true, "application/cloudevents-batch+json": true}
)

// allowContentType answers 415 unless r's Content-Type is one of types
// (parameters such as charset are allowed).
func allowContentType(w http.ResponseWriter, r *http.Request, types map[string]bool, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && types[mt] {
		return true
	}
	writeError(w, http.StatusUnsupportedMediaType, "unsupported media type", "Content-Type must be "+want)
	return false
}

// readBody reads at most max bytes of the body; beyond that it answers 413.
// Any other read failure is answered 400.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, bool) {
	tooLarge := func() ([]byte, bool) {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large", fmt.Sprintf("the limit is %d bytes: split the request", max))
		return nil, false
	}
	if r.ContentLength > max {
		return tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case err != nil:
		writeError(w, http.StatusBadRequest, "cannot read the body", "the body ended early or timed out")
		return nil, false
	}
	return body, true
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// RequestIDHeader carries the request id, taken from the request when it is
// a sane one, else made; it is echoed in the response and the access log.
const RequestIDHeader = "X-Request-Id"

func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); id != "" && len(id) <= 64 {
		ok := true
		for i := 0; i < len(id) && ok; i++ {
			c := id[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		}
		if ok {
			return id
		}
	}
	return randomHex(8)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return hex.EncodeToString(b)
}

// accessLog logs one line per request: method, path, status, duration,
// remote address and request id. Never bodies, query strings or headers, so
// never a credential or a signature.
func (h *Handler) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		w.Header().Set(RequestIDHeader, id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("path", cutPath(r.URL.Path)),
			slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote_addr", r.RemoteAddr),
			slog.String("request_id", id),
		)
	})
}

// cutPath bounds a logged path: unknown paths come from clients.
func cutPath(p string) string {
	const max = 200
	if len(p) > max {
		return p[:max] + "…"
	}
	return p
}
