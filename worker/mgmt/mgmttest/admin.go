package mgmttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Admin endpoints, for tests and benchmarks that run the simulator in another process. They
// are not Auth0 paths and have no authentication: serve the simulator on loopback only.
const (
	// AdminState answers GET with the JSON of State().
	AdminState = "/sim/state"
	// AdminStats answers GET with the JSON of Stats().
	AdminStats = "/sim/stats"
	// AdminTenant answers GET with {"orgs":[…],"connections":[…],"organizations":[…]}: Orgs(),
	// Connections() and Organizations() (ids with names).
	AdminTenant = "/sim/tenant"
	// AdminBucket takes POST {"bucket":"global|write|read","burst":N,"rate":R} (and an optional
	// "window":"15s" for a fixed-window bucket) and calls SetBucket; it answers 204.
	AdminBucket = "/sim/bucket"
	// AdminFaults takes POST {"error_5xx":P,"error_500":P,"html_502":P,"drop":P,"reset":P,
	// "lost_response":P,"latency":"50ms","jitter":"10ms"} and calls SetFaults with it (absent
	// fields are zero); it answers 204.
	AdminFaults = "/sim/faults"
	// AdminExpireTokens takes POST and calls ExpireTokens; it answers 204.
	AdminExpireTokens = "/sim/expire-tokens"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 64 << 10

// adminError is the body of an admin endpoint error.
type adminError struct {
	Error string `json:"error"`
}

// tenantBody is the answer of GET /sim/tenant.
type tenantBody struct {
	Orgs          []string       `json:"orgs"`
	Connections   []Connection   `json:"connections"`
	Organizations []Organization `json:"organizations"`
}

// bucketChange is the body of POST /sim/bucket.
type bucketChange struct {
	Bucket BucketName `json:"bucket"`
	Burst  int        `json:"burst"`
	Rate   float64    `json:"rate"`
	Window string     `json:"window"` // a Go duration; "" means none
}

// faultsChange is the body of POST /sim/faults; durations are Go duration strings.
type faultsChange struct {
	Error5xx     float64 `json:"error_5xx"`
	Error500     float64 `json:"error_500"`
	HTML502      float64 `json:"html_502"`
	Drop         float64 `json:"drop"`
	Reset        float64 `json:"reset"`
	LostResponse float64 `json:"lost_response"`
	Latency      string  `json:"latency"`
	Jitter       string  `json:"jitter"`
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	method := http.MethodPost
	switch r.URL.Path {
	case AdminState, AdminStats, AdminTenant:
		method = http.MethodGet
	case AdminBucket, AdminFaults, AdminExpireTokens:
	default:
		writeJSON(w, http.StatusNotFound, adminError{"no admin endpoint " + r.URL.Path})
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, adminError{fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, method)})
		return
	}
	switch r.URL.Path {
	case AdminState:
		writeJSON(w, http.StatusOK, s.State())
	case AdminStats:
		writeJSON(w, http.StatusOK, s.Stats())
	case AdminTenant:
		writeJSON(w, http.StatusOK, tenantBody{Orgs: s.Orgs(), Connections: s.Connections(), Organizations: s.Organizations()})
	case AdminExpireTokens:
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	case AdminBucket:
		var c bucketChange
		if err := decodeAdmin(r, &c); err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{"POST /sim/bucket: " + err.Error()})
			return
		}
		if c.Bucket != GlobalBucket && c.Bucket != WriteBucket && c.Bucket != ReadBucket {
			writeJSON(w, http.StatusBadRequest, adminError{fmt.Sprintf("POST /sim/bucket: unknown bucket %q, want \"global\", \"write\" or \"read\"", c.Bucket)})
			return
		}
		if c.Burst < 0 || c.Rate < 0 {
			writeJSON(w, http.StatusBadRequest, adminError{fmt.Sprintf("POST /sim/bucket: burst %d and rate %g must not be negative", c.Burst, c.Rate)})
			return
		}
		b := Bucket{Burst: c.Burst, Rate: c.Rate}
		if c.Window != "" {
			d, err := time.ParseDuration(c.Window)
			if err != nil || d < 0 {
				writeJSON(w, http.StatusBadRequest, adminError{fmt.Sprintf("POST /sim/bucket: window %q is not a non-negative Go duration such as \"15s\"", c.Window)})
				return
			}
			b.Window = d
		}
		s.SetBucket(c.Bucket, b)
		w.WriteHeader(http.StatusNoContent)
	case AdminFaults:
		var c faultsChange
		if err := decodeAdmin(r, &c); err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{"POST /sim/faults: " + err.Error()})
			return
		}
		f := Faults{Error5xx: c.Error5xx, Error500: c.Error500, HTML502: c.HTML502, Drop: c.Drop, Reset: c.Reset, LostResponse: c.LostResponse}
		for _, d := range []struct {
			name string
			text string
			dst  *time.Duration
		}{{"latency", c.Latency, &f.Latency}, {"jitter", c.Jitter, &f.Jitter}} {
			if d.text == "" {
				continue
			}
			v, err := time.ParseDuration(d.text)
			if err != nil || v < 0 {
				writeJSON(w, http.StatusBadRequest, adminError{fmt.Sprintf("POST /sim/faults: %s %q is not a non-negative Go duration such as \"50ms\"", d.name, d.text)})
				return
			}
			*d.dst = v
		}
		s.SetFaults(f)
		w.WriteHeader(http.StatusNoContent)
	}
}

// decodeAdmin decodes a JSON admin body into v, refusing unknown fields.
func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body is not the expected JSON object: %w", err)
	}
	return nil
}
