package appliance

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"cairn/internal/openstack"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// metrics are the appliance's Prometheus metrics, in a registry of its
// own (not the process-wide default one, so that two appliances in one
// process, as in tests, keep separate counts). The byte and job gauges
// stay plain atomics that the jobs bump; the registry reads them at
// scrape time.
type metrics struct {
	once        sync.Once
	reg         *prometheus.Registry
	jobs        *prometheus.CounterVec // kind, status
	dur         *prometheus.SummaryVec // kind
	running     atomic.Int64
	queued      atomic.Int64
	interrupted atomic.Int64
	storeErrors atomic.Int64
	stateWrites atomic.Int64 // committed puts and deletes
	protBytes   atomic.Int64 // bytes read from sources
	storedBytes atomic.Int64 // bytes added to the shard stores
	restBytes   atomic.Int64
	cloud       openstack.Timing // waiting for OpenStack, by the cloud plugins
}

// init builds the registry: the appliance's metrics, the checkpoint
// counts read from a under its lock, and the standard process and Go
// runtime collectors.
func (m *metrics) init(a *Appliance) {
	m.once.Do(func() {
		m.reg = prometheus.NewRegistry()
		m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_jobs_total",
			Help: "Jobs finished, by kind and result."}, []string{"kind", "status"})
		m.dur = prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: "cairn_job_duration_seconds",
			Help: "Time jobs took, by kind."}, []string{"kind"})
		// Every series a scrape may later see starts at zero, so that
		// rate() counts the first job too.
		for _, k := range []string{"protect", "restore", "verify"} {
			for _, st := range []string{"success", "error"} {
				m.jobs.WithLabelValues(k, st)
			}
			m.dur.WithLabelValues(k)
		}
		fn := func(name, help string, v *atomic.Int64, counter bool) prometheus.Collector {
			f := func() float64 { return float64(v.Load()) }
			if counter {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
			}
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
		}
		m.reg.MustRegister(m.jobs, m.dur,
			fn("cairn_jobs_running", "Jobs running now.", &m.running, false),
			fn("cairn_jobs_queued", "Jobs waiting for a worker.", &m.queued, false),
			fn("cairn_jobs_interrupted_total", "Jobs found interrupted at start-up.", &m.interrupted, true),
			fn("cairn_state_errors_total", "Failures to persist state.", &m.storeErrors, true),
			fn("cairn_state_writes_total", "Objects written to or deleted from the state database.", &m.stateWrites, true),
			fn("cairn_protected_bytes_total", "Bytes read from protected resources.", &m.protBytes, true),
			fn("cairn_stored_bytes_total", "Bytes protections added to the repository.", &m.storedBytes, true),
			fn("cairn_restored_bytes_total", "Bytes of resources restored.", &m.restBytes, true),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_cloud_request_seconds_total",
				Help: "Time spent in HTTP requests to OpenStack."}, func() float64 { return m.cloud.Requests().Seconds() }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_cloud_sleep_seconds_total",
				Help: "Time spent waiting between polls of OpenStack status changes and before retries."},
				func() float64 { return m.cloud.Sleeps().Seconds() }),
			checkpointCollector{a},
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewGoCollector())
	})
}

func (m *metrics) jobQueued(kind string) { m.queued.Add(1) }

func (m *metrics) jobStarted(kind string) {
	m.queued.Add(-1)
	m.running.Add(1)
}

func (m *metrics) jobDone(kind string, err error, d time.Duration) {
	st := "success"
	if err != nil {
		st = "error"
	}
	m.jobs.WithLabelValues(kind, st).Inc()
	m.dur.WithLabelValues(kind).Observe(d.Seconds())
	// Last, so that a scrape that sees no job running sees it counted.
	m.running.Add(-1)
}

var checkpointsDesc = prometheus.NewDesc("cairn_checkpoints", "Checkpoints by status.", []string{"status"}, nil)

// checkpointCollector counts the checkpoints by status at scrape time.
type checkpointCollector struct{ a *Appliance }

func (c checkpointCollector) Describe(ch chan<- *prometheus.Desc) { ch <- checkpointsDesc }

func (c checkpointCollector) Collect(ch chan<- prometheus.Metric) {
	c.a.mu.Lock()
	byStatus := map[string]int{}
	for _, cp := range c.a.checkpoints {
		byStatus[cp.Status]++
	}
	c.a.mu.Unlock()
	for s, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(checkpointsDesc, prometheus.GaugeValue, float64(n), s)
	}
}

// Metrics returns the appliance's metrics registry, for /metrics and for
// the API to add its own collectors to.
func (a *Appliance) Metrics() *prometheus.Registry {
	a.metrics.init(a)
	return a.metrics.reg
}

// WriteMetrics writes the metrics in Prometheus text format.
func (a *Appliance) WriteMetrics(w io.Writer) error {
	mfs, err := a.Metrics().Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
	}
	return nil
}
