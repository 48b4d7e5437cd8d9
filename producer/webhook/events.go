package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
)

// eventResult is one event's entry in the events response.
type eventResult struct {
	ID      string   `json:"id"`
	Type    string   `json:"type"`
	Outcome Outcome  `json:"outcome"`
	Batch   string   `json:"batch,omitempty"`
	TaskIDs []string `json:"task_ids,omitempty"`
}

// eventsResponse is the body of a 2xx from /v1/auth0/events.
type eventsResponse struct {
	Results []eventResult `json:"results"`
}

// serveEvents handles POST /v1/auth0/events. Checks, in order: method
// (405), credentials (401), Content-Type (415), body size (413), events
// (400: Auth0 does not retry a 4xx, and such a delivery can never succeed),
// then every event is processed in order (202 when any was applied, else
// 200; 503 when Redis fails or the tenant cannot be asked, so that Auth0
// delivers again). organization.connection.* events are confirmed and
// deduplicated, and queue nothing; an event whose rule changes the tenant
// cannot take (legacy mode, an unknown name) is refused, queueing nothing.
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { h.metrics.request(endpointEvents, rec.status, time.Since(start)) }()
	w = rec

	if !allowPost(w, r) {
		return
	}
	if !h.cfg.EventAuth.admits(r) {
		for _, c := range h.cfg.EventAuth.challenge() {
			w.Header().Add("WWW-Authenticate", c)
		}
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong credentials: set the Event Stream's authorization to the one orgconn is configured with")
		return
	}
	if !allowContentType(w, r, eventTypes, "application/json or application/cloudevents+json") {
		return
	}
	body, ok := readBody(w, r, h.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	events, problems := DecodeEvents(body, h.cfg.Rules.Handles)
	if len(problems) > 0 {
		h.log.Warn("events refused", "problems", len(problems), "first", problems[0].String())
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid request", Errors: problems})
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
	defer cancel()
	resp := eventsResponse{Results: make([]eventResult, 0, len(events))}
	status := http.StatusOK
	for _, ev := range events {
		res, err := h.process(ctx, ev)
		if err != nil {
			h.log.Error("event not processed", "event_id", ev.ID, "event_type", ev.Type, "error", err)
			h.unavailable(w)
			return
		}
		if res.Outcome == Applied {
			status = http.StatusAccepted
		}
		resp.Results = append(resp.Results, res)
	}
	writeJSON(w, status, resp)
}

// process turns one event into its changes and submits them once.
func (h *Handler) process(ctx context.Context, ev Event) (eventResult, error) {
	res := eventResult{ID: ev.ID, Type: ev.Type}
	logArgs := []any{"event_id", ev.ID, "event_type", ev.Type}
	if ev.Connection != nil {
		return h.confirm(ctx, ev)
	}
	if !h.cfg.Rules.Handles(ev.Type) {
		res.Outcome = Ignored
		h.log.Info("event ignored: no rule names its type", logArgs...)
		h.metrics.event(ev.Type, res.Outcome)
		return res, nil
	}
	logArgs = append(logArgs, "org_id", ev.Org.ID)
	changes := h.cfg.Rules.ChangesFor(ev.Type, *ev.Org)
	if len(changes) == 0 {
		res.Outcome = NoRule
		h.log.Info("event ignored: no rule matches its organization", logArgs...)
		h.metrics.event(ev.Type, res.Outcome)
		return res, nil
	}
	refused, err := h.admit(ctx, changes, true)
	if err != nil {
		return res, err
	}
	if len(refused) > 0 {
		res.Outcome = Refused
		h.log.Warn("event refused: its changes are not possible on this tenant", append(logArgs, "problems", len(refused), "first", refused[0].String())...)
		h.metrics.event(ev.Type, res.Outcome)
		return res, nil
	}
	res.Batch = EventBatch(ev.ID)
	logArgs = append(logArgs, "batch", res.Batch)
	for i := range changes {
		res.TaskIDs = append(res.TaskIDs, jobs.TaskID(res.Batch, i+1))
	}

	marker := h.cfg.KeyPrefix + ":event:" + strings.TrimPrefix(res.Batch, "evt-")
	seen, err := h.cfg.Redis.Exists(ctx, marker).Result()
	if err != nil {
		return res, err
	}
	if seen > 0 {
		res.Outcome = Duplicate
		h.log.Info("event is a duplicate: already applied", logArgs...)
		h.metrics.event(ev.Type, res.Outcome)
		return res, nil
	}
	receipt, err := h.cfg.Submitter.Submit(ctx, producer.Submission{
		Batch: res.Batch, Source: "event:" + ev.Type, Event: ev.ID, Changes: changes,
	})
	if err != nil {
		return res, err
	}
	// The ledger is the source of truth: a batch whose lines were all
	// accepted before is a duplicate even when the marker was lost.
	res.Outcome = Applied
	if receipt.Accepted == 0 {
		res.Outcome = Duplicate
	}
	if err := h.cfg.Redis.SetNX(context.WithoutCancel(ctx), marker, ev.ID, h.cfg.EventTTL).Err(); err != nil {
		h.log.Warn("event marker not stored; the ledger still recognises a redelivery", append(logArgs, "error", err)...)
	}
	h.metrics.accepted.WithLabelValues(endpointEvents).Add(float64(receipt.Accepted))
	h.metrics.event(ev.Type, res.Outcome)
	h.log.Info("event "+res.Outcome.String(), append(logArgs, "changes", len(changes))...)
	return res, nil
}

// confirm records an organization.connection.* event: the first delivery of
// its id is counted as confirmed, a redelivery as a duplicate (the same
// marker as other events); nothing is queued. An error (Redis) means the
// delivery should be answered 503 so that Auth0 delivers it again.
func (h *Handler) confirm(ctx context.Context, ev Event) (eventResult, error) {
	res := eventResult{ID: ev.ID, Type: ev.Type}
	marker := h.cfg.KeyPrefix + ":event:" + strings.TrimPrefix(EventBatch(ev.ID), "evt-")
	first, err := h.cfg.Redis.SetNX(ctx, marker, ev.ID, h.cfg.EventTTL).Result()
	if err != nil {
		return res, err
	}
	res.Outcome = Confirmed
	if !first {
		res.Outcome = Duplicate
	}
	h.metrics.event(ev.Type, res.Outcome)
	h.log.Info("event "+res.Outcome.String()+": it confirms a write and queues nothing",
		"event_id", ev.ID, "event_type", ev.Type, "org_id", ev.Connection.OrgID, "connection_id", ev.Connection.ConnectionID)
	return res, nil
}

// EventBatch names the batch of the event with CloudEvent id id: "evt-" and
// the first 24 hex digits of SHA-256 of the id.
func EventBatch(id string) string {
	h := sha256.Sum256([]byte(id))
	return "evt-" + hex.EncodeToString(h[:])[:24]
}
