package metrics

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
)

// collectTimeout bounds the Redis reads of one scrape.
const collectTimeout = 3 * time.Second

// StateReader reads the fleet's model of a tenant's budget; a
// *ratelimit.Limiter is one.
type StateReader interface {
	State(ctx context.Context) (ratelimit.State, error)
}

// LimiterCollector reports the fleet's learned rate limits, read from Redis
// at each scrape: orgconn_limiter_bucket_rate and _burst per bucket (the
// bucket label is the bucket's id, e.g. "w10": write answers, limit 10) and
// orgconn_limiter_paused (1 while a 429 pauses every caller).
type LimiterCollector struct {
	src    StateReader
	log    *slog.Logger
	rate   *prometheus.Desc
	burst  *prometheus.Desc
	paused *prometheus.Desc
	errs   prometheus.Counter
	now    func() time.Time
}

// NewLimiterCollector returns a collector of src's state; register it in a
// prometheus.Registry. A nil log means slog.Default().
func NewLimiterCollector(src StateReader, log *slog.Logger) *LimiterCollector {
	if log == nil {
		log = slog.Default()
	}
	return &LimiterCollector{
		src: src, log: log, now: time.Now,
		rate:   prometheus.NewDesc(NameLimiterRate, "The rate (tokens per second) the fleet's rate limiter paces a bucket at, as learned from the tenant's answers.", []string{"bucket"}, nil),
		burst:  prometheus.NewDesc(NameLimiterBurst, "The size (tokens) of a bucket of the tenant's rate limit, as the tenant's answers describe it.", []string{"bucket"}, nil),
		paused: prometheus.NewDesc(NameLimiterPaused, "1 while a 429 pauses every worker of the fleet, else 0.", nil, nil),
		errs:   newCollectErrors("limiter"),
	}
}

// Describe implements prometheus.Collector.
func (c *LimiterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rate
	ch <- c.burst
	ch <- c.paused
	c.errs.Describe(ch)
}

// Collect implements prometheus.Collector. When Redis cannot be read, the
// scrape lacks the limiter's values and orgconn_collect_errors_total
// {collector="limiter"} goes up.
func (c *LimiterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	st, err := c.src.State(ctx)
	if err != nil {
		c.errs.Inc()
		c.log.Warn("metrics: cannot read the rate limiter's state", "err", err)
	} else {
		for _, b := range st.Buckets {
			ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, b.Rate, b.ID)
			ch <- prometheus.MustNewConstMetric(c.burst, prometheus.GaugeValue, float64(b.Burst), b.ID)
		}
		paused := 0.0
		if st.PausedUntil.After(c.now()) {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused)
	}
	c.errs.Collect(ch)
}

// QueueCollector reports asynq queues, read from Redis at each scrape:
// orgconn_queue_tasks by queue and state (pending, active, scheduled,
// retry, archived), orgconn_queue_latency_seconds (age of the oldest
// pending task) and orgconn_queue_workers (worker processes serving the
// queue, from asynq's heartbeats). A queue nothing was ever enqueued to
// reports zeros.
type QueueCollector struct {
	insp    *asynq.Inspector
	queues  []string
	log     *slog.Logger
	tasks   *prometheus.Desc
	latency *prometheus.Desc
	workers *prometheus.Desc
	errs    prometheus.Counter
}

// NewQueueCollector returns a collector of the given queues. A nil log
// means slog.Default().
func NewQueueCollector(insp *asynq.Inspector, log *slog.Logger, queues ...string) *QueueCollector {
	if log == nil {
		log = slog.Default()
	}
	return &QueueCollector{
		insp: insp, queues: slices.Clone(queues), log: log,
		tasks:   prometheus.NewDesc(NameQueueTasks, "Tasks in an asynq queue, by queue and state: pending (ready), active (being worked on), scheduled, retry (waiting to be tried again) and archived (dead letters).", []string{"queue", "state"}, nil),
		latency: prometheus.NewDesc(NameQueueLatency, "Age of the oldest pending task of a queue (0 when none is pending).", []string{"queue"}, nil),
		workers: prometheus.NewDesc(NameQueueWorkers, "Worker processes fetching from a queue (asynq servers whose heartbeat in Redis says active).", []string{"queue"}, nil),
		errs:    newCollectErrors("queue"),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tasks
	ch <- c.latency
	ch <- c.workers
	c.errs.Describe(ch)
}

// Collect implements prometheus.Collector. A queue whose state cannot be
// read is left out of the scrape and orgconn_collect_errors_total
// {collector="queue"} goes up.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errs.Collect(ch)
	known, err := c.insp.Queues()
	if err != nil {
		c.fail(err)
		return
	}
	servers, err := c.insp.Servers()
	if err != nil {
		c.fail(err)
		return
	}
	for _, q := range c.queues {
		var counts [5]int // in QueueStates order
		var latency time.Duration
		if slices.Contains(known, q) {
			qi, err := c.insp.GetQueueInfo(q)
			if err != nil {
				c.fail(err)
				continue
			}
			counts = [5]int{qi.Pending, qi.Active, qi.Scheduled, qi.Retry, qi.Archived}
			latency = qi.Latency
		}
		for i, state := range QueueStates {
			ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(counts[i]), q, state)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, latency.Seconds(), q)
		n := 0
		for _, s := range servers {
			if _, ok := s.Queues[q]; ok && s.Status == "active" {
				n++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.workers, prometheus.GaugeValue, float64(n), q)
	}
}

func (c *QueueCollector) fail(err error) {
	c.errs.Inc()
	c.log.Warn("metrics: cannot read the queue's state", "err", err)
}
