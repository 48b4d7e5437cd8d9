// Package metrics exposes what workers do as Prometheus metrics: task
// outcomes, Management API calls, time spent waiting for rate budget, the
// fleet's learned rate limits and the queue's depth.
//
// Everything registers into a prometheus.Registerer the caller passes (a
// per-process *prometheus.Registry, never the global one), so tests and
// processes do not share state. Counters are fed by two hooks: Metrics.Task
// (worker.Config.Observe) and the Pacer decorator (mgmt.Config.Pacer), which
// sees every API call. The limiter's buckets and the queue's depth are read
// from Redis at scrape time by Collectors (LimiterCollector, QueueCollector);
// they describe the whole fleet, so every process reports the same values
// and dashboards aggregate them with max, not sum.
//
// Names lists every metric name the package and the webhook intake
// register; deploy's tests check dashboards and alert rules against it.
package metrics

import (
	"errors"
	"slices"
	"strconv"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker"
	"github.com/prometheus/client_golang/prometheus"
)

// The metric names. Histograms also expose _bucket, _sum and _count series.
const (
	NameTasks          = "orgconn_tasks_total"
	NameDeadLetters    = "orgconn_dead_letters_total"
	NameAPIRequests    = "orgconn_api_requests_total"
	NameAPIThrottled   = "orgconn_api_throttled_total"
	NameLimiterWait    = "orgconn_limiter_wait_seconds"
	NameLimiterRate    = "orgconn_limiter_bucket_rate"
	NameLimiterBurst   = "orgconn_limiter_bucket_burst"
	NameLimiterPaused  = "orgconn_limiter_paused"
	NameQueueTasks     = "orgconn_queue_tasks"
	NameQueueLatency   = "orgconn_queue_latency_seconds"
	NameQueueWorkers   = "orgconn_queue_workers"
	NameWorkerSlots    = "orgconn_worker_concurrency"
	NameCollectErrors  = "orgconn_collect_errors_total"
	NameWebhookReqs    = "orgconn_webhook_requests_total"
	NameWebhookAccept  = "orgconn_webhook_changes_accepted_total"
	NameWebhookEvents  = "orgconn_events_total"
	NameWebhookLatency = "orgconn_webhook_request_duration_seconds"
)

// Names are the names of every metric orgconn registers (this package's and
// producer/webhook's, which serve exposes), sorted. Histograms are listed
// by their base name.
var Names = sortedNames(
	NameTasks, NameDeadLetters, NameAPIRequests, NameAPIThrottled, NameLimiterWait,
	NameLimiterRate, NameLimiterBurst, NameLimiterPaused,
	NameQueueTasks, NameQueueLatency, NameQueueWorkers, NameWorkerSlots, NameCollectErrors,
	NameWebhookReqs, NameWebhookAccept, NameWebhookEvents, NameWebhookLatency,
)

// Histograms are the names in Names that are histograms.
var Histograms = sortedNames(NameLimiterWait, NameWebhookLatency)

func sortedNames(n ...string) []string { slices.Sort(n); return n }

// QueueStates are the values of orgconn_queue_tasks' state label.
var QueueStates = []string{"pending", "active", "scheduled", "retry", "archived"}

// Metrics holds a worker process's counters. Its methods are safe for
// concurrent use.
type Metrics struct {
	tasks       *prometheus.CounterVec   // action, outcome
	deadLetters *prometheus.CounterVec   // reason
	requests    *prometheus.CounterVec   // method, status
	throttled   prometheus.Counter       //
	wait        *prometheus.HistogramVec // class
	slots       *prometheus.GaugeVec     // queue
}

// WaitBuckets are the limiter wait histogram's buckets, in seconds: from a
// free slot (about a millisecond) to a long pause after a 429 (minutes).
var WaitBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New registers a worker's metrics in reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTasks,
			Help: "Deliveries of queued changes that reached an outcome, by action (enable, update, remove; empty for an unreadable task) and outcome (the worker's reason: applied, superseded, unchanged, rate_limited, server_error, …). A change retried three times counts four times.",
		}, []string{"action", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameDeadLetters,
			Help: "Changes dead-lettered (recorded and archived), by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameAPIRequests,
			Help: "Management API requests, by HTTP method and status code (\"none\" when no answer came).",
		}, []string{"method", "status"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameAPIThrottled,
			Help: "Management API requests answered 429 Too Many Requests.",
		}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameLimiterWait,
			Help:    "Time a Management API call waited in the rate limiter before it was sent, by class (read, write).",
			Buckets: WaitBuckets,
		}, []string{"class"}),
		slots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameWorkerSlots,
			Help: "Changes this worker process works on at once, by queue; absent when no worker process is scraped.",
		}, []string{"queue"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.tasks, m.deadLetters, m.requests, m.throttled, m.wait, m.slots} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Series that alerts and dashboards rate() exist from the start, at 0.
	for _, r := range worker.DeadReasons {
		m.deadLetters.WithLabelValues(string(r))
	}
	for _, a := range []jobs.Action{jobs.Enable, jobs.Update, jobs.Remove} {
		m.tasks.WithLabelValues(string(a), string(worker.ReasonApplied))
		m.tasks.WithLabelValues(string(a), string(worker.ReasonUnchanged))
	}
	return m, nil
}

// Task records a delivery's outcome; it has the signature of
// worker.Config.Observe. A Dead outcome is also a dead letter.
func (m *Metrics) Task(a jobs.Action, o worker.Outcome) {
	m.tasks.WithLabelValues(string(a), string(o.Reason)).Inc()
	if o.Kind == worker.Dead {
		m.deadLetters.WithLabelValues(string(o.Reason)).Inc()
	}
}

// SetWorker records that this process works on queue with the given
// concurrency (orgconn_worker_concurrency: its presence says a worker runs).
func (m *Metrics) SetWorker(queue string, concurrency int) {
	m.slots.WithLabelValues(queue).Set(float64(concurrency))
}

// statusLabel is the status label of an answer: its code, or "none".
func statusLabel(status int) string {
	if status == 0 {
		return "none"
	}
	return strconv.Itoa(status)
}

// newCollectErrors counts a collector's failures to read Redis; each
// collector owns one, told apart by the collector label.
func newCollectErrors(collector string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name:        NameCollectErrors,
		Help:        "Scrapes that could not read a fleet-wide value from Redis, by collector (limiter, queue); the values are left out of that scrape.",
		ConstLabels: prometheus.Labels{"collector": collector},
	})
}
