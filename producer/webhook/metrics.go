package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Endpoint labels of the metrics.
const (
	endpointChanges = "changes"
	endpointEvents  = "events"
)

// Outcome is what became of one event. Its String doubles as the "outcome"
// label of orgconn_events_total and the "outcome" of the events response.
type Outcome int

// The outcomes of an event.
const (
	// Applied: the event's changes were accepted and queued.
	Applied Outcome = iota
	// Duplicate: the event was delivered before; nothing new was queued.
	Duplicate
	// Ignored: no rule names the event's type.
	Ignored
	// NoRule: rules name the event's type, but none matched its organization.
	NoRule
	// Confirmed: an organization.connection.added, updated or removed
	// event, delivered for the first time: it confirms a write (orgconn's
	// or anyone's) and queues nothing.
	Confirmed
	// Refused: the changes the rules call for cannot be made on this
	// tenant (a change needing the Organization connections API in legacy
	// mode, or an unknown name); nothing was queued.
	Refused
)

// String returns applied, duplicate, ignored, no_rule, confirmed or refused.
func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Ignored:
		return "ignored"
	case NoRule:
		return "no_rule"
	case Confirmed:
		return "confirmed"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// MarshalText writes the outcome's String.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an outcome's String.
func (o *Outcome) UnmarshalText(b []byte) error {
	for _, c := range []Outcome{Applied, Duplicate, Ignored, NoRule, Confirmed, Refused} {
		if c.String() == string(b) {
			*o = c
			return nil
		}
	}
	return fmt.Errorf("unknown event outcome %q", b)
}

// knownEventTypes are Auth0 Event Streams types counted under their own name
// in orgconn_events_total; any other type is counted as "other", so that a
// sender cannot create series without end.
var knownEventTypes = map[string]bool{
	"user.created": true, "user.updated": true, "user.deleted": true,
	"organization.created": true, "organization.updated": true, "organization.deleted": true,
	"organization.member.added": true, "organization.member.deleted": true,
	"organization.member.role.assigned": true, "organization.member.role.deleted": true,
	"organization.connection.added": true, "organization.connection.updated": true, "organization.connection.removed": true,
	"group.created": true, "group.updated": true, "group.deleted": true,
	"group.member.added": true, "group.member.deleted": true,
}

func eventTypeLabel(t string) string {
	if knownEventTypes[t] {
		return t
	}
	return "other"
}

// metrics are the package's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec   // endpoint, code
	accepted *prometheus.CounterVec   // endpoint
	events   *prometheus.CounterVec   // type, outcome
	duration *prometheus.HistogramVec // endpoint
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgconn_webhook_requests_total",
			Help: "Requests to the webhook endpoints, by endpoint (changes, events) and HTTP status code.",
		}, []string{"endpoint", "code"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgconn_webhook_changes_accepted_total",
			Help: "Changes newly accepted and queued from webhook requests, by endpoint.",
		}, []string{"endpoint"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgconn_events_total",
			Help: "Auth0 events received, by type (\"other\" for unlisted types) and outcome: applied, duplicate, ignored, no_rule, confirmed (organization.connection.* events: they confirm writes and queue nothing) or refused.",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orgconn_webhook_request_duration_seconds",
			Help:    "Time to answer a webhook request, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.accepted, m.events, m.duration} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, e := range []string{endpointChanges, endpointEvents} {
		m.accepted.WithLabelValues(e)
	}
	return m, nil
}

func (m *metrics) request(endpoint string, status int, took time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(endpoint).Observe(took.Seconds())
}

func (m *metrics) event(eventType string, o Outcome) {
	m.events.WithLabelValues(eventTypeLabel(eventType), o.String()).Inc()
}
