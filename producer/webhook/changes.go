package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
)

// changesResponse is the body of a 202 from /v1/changes.
type changesResponse struct {
	Batch    string   `json:"batch"`
	Accepted int      `json:"accepted"`
	TaskIDs  []string `json:"task_ids"`
}

// serveChanges handles POST /v1/changes. Checks, in order: method (405),
// Content-Type (415), body size (413), signature (401), body (400), the
// tenant (422: a change needing the Organization connections API on a
// tenant in legacy mode, or an unknown name; 503 when the tenant cannot be
// asked), Idempotency-Key (400, 409, 422, or a replay), then the changes are
// submitted (202, or 503 when Redis fails).
func (h *Handler) serveChanges(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { h.metrics.request(endpointChanges, rec.status, time.Since(start)) }()
	w = rec

	if !allowPost(w, r) || !allowContentType(w, r, jsonTypes, "application/json") {
		return
	}
	body, ok := readBody(w, r, h.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	if err := VerifySignature(r.Header.Get(SignatureHeader), body, h.secrets, h.cfg.Now(), h.cfg.SignatureTolerance); err != nil {
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	changes, envelope, problems := decodeChanges(body, h.cfg.MaxChanges)
	if len(problems) > 0 {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid request", Errors: problems})
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
	defer cancel()
	refused, err := h.admit(ctx, changes, envelope)
	if err != nil {
		h.log.Error("changes not checked against the tenant", "error", err)
		h.tenantUnavailable(w)
		return
	}
	if len(refused) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: "not possible on this tenant", Errors: refused})
		return
	}
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	key, hasKey := r.Header.Get(IdempotencyHeader), len(r.Header.Values(IdempotencyHeader)) > 0
	var batch string
	if hasKey {
		if p := checkIdempotencyKey(key); p != "" {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid request", Errors: []Problem{{Field: IdempotencyHeader, Problem: p}}})
			return
		}
		prev, err := h.idem.claim(ctx, key, bodyHash)
		if err != nil {
			h.log.Error("idempotency store unavailable", "error", err)
			h.unavailable(w)
			return
		}
		if prev != nil {
			h.answerRepeat(w, prev, bodyHash)
			return
		}
		batch = keyedBatch(key, bodyHash)
	} else {
		batch = timedBatch(h.cfg.Now())
	}

	receipt, err := h.cfg.Submitter.Submit(ctx, producer.Submission{Batch: batch, Source: "webhook", Changes: changes})
	if err != nil {
		h.log.Error("submit failed", "batch", batch, "error", err)
		if hasKey {
			if err := h.idem.abandon(context.WithoutCancel(ctx), key); err != nil {
				h.log.Warn("idempotency key not released; it frees itself shortly", "batch", batch, "error", err)
			}
		}
		h.unavailable(w)
		return
	}
	h.metrics.accepted.WithLabelValues(endpointChanges).Add(float64(receipt.Accepted))
	h.log.Info("changes accepted", "batch", batch, "changes", len(changes), "new", receipt.Accepted)
	out := encodeJSON(changesResponse{Batch: batch, Accepted: len(changes), TaskIDs: receipt.TaskIDs})
	if hasKey {
		if err := h.idem.finish(context.WithoutCancel(ctx), key, bodyHash, http.StatusAccepted, out); err != nil {
			// The changes are queued; a repeat of the request would submit
			// the same batch again, which adds nothing.
			h.log.Warn("response not stored for replay", "batch", batch, "error", err)
		}
	}
	writeBody(w, http.StatusAccepted, out)
}

// admit checks changes against the tenant's mode and resolves their names
// in place (see Config.Mode and Config.Resolver). It returns the problems,
// with indexes when indexed is true; an error means the tenant could not be
// asked.
func (h *Handler) admit(ctx context.Context, changes []jobs.Change, indexed bool) ([]Problem, error) {
	mode := producer.ModeUnknown
	if h.cfg.Mode != nil {
		m, err := h.cfg.Mode.Mode(ctx)
		if err != nil {
			return nil, fmt.Errorf("tell the tenant's API mode: %w", err)
		}
		mode = m
	}
	cps, err := producer.AdmitChanges(ctx, changes, mode, "", h.cfg.Resolver)
	if err != nil {
		return nil, err
	}
	var ps problems
	for _, cp := range cps {
		var index *int
		if indexed {
			i := cp.Index
			index = &i
		}
		ps.add(index, cp.Field, cp.Problem)
	}
	return ps.result(), nil
}

// tenantUnavailable answers 503: the tenant's mode or a name could not be
// told; the same request may be sent again.
func (h *Handler) tenantUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "temporarily unavailable",
		"the tenant could not be asked (its API mode, or a name look-up): send the same request again")
}

// answerRepeat answers a request whose Idempotency-Key was seen before.
func (h *Handler) answerRepeat(w http.ResponseWriter, prev *idemRecord, bodyHash string) {
	switch {
	case prev.BodySHA256 != bodyHash:
		writeError(w, http.StatusUnprocessableEntity, "idempotency key reused",
			"this Idempotency-Key was used with a different body: use a new key for a new request")
	case prev.State != idemDone:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusConflict, "request in progress",
			"a request with this Idempotency-Key is still being processed: retry shortly")
	default:
		w.Header().Set(ReplayedHeader, "true")
		writeBody(w, prev.Status, prev.Body)
	}
}

// unavailable answers 503: Redis failed; the same request may be sent again.
func (h *Handler) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "temporarily unavailable",
		"the queue could not be reached: send the same request again (with the same Idempotency-Key it resumes without duplicates)")
}

// keyedBatch names the batch of a request with an Idempotency-Key: "wh-" and
// 24 hex digits of SHA-256 over the key and the body's hash. A retry of the
// same request resumes the same batch; the key reused for another body
// (after its record expired) names another batch instead of silently
// colliding with the first one's lines.
func keyedBatch(key, bodyHash string) string {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(bodyHash))
	return "wh-" + hex.EncodeToString(h.Sum(nil))[:24]
}

// timedBatch names the batch of a request without an Idempotency-Key:
// "wh-", the UTC time to the microsecond, and 64 random bits, so names sort
// by time and never repeat.
func timedBatch(now time.Time) string {
	return "wh-" + now.UTC().Format("20060102T150405.000000") + "-" + randomHex(8)
}
