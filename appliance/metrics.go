package appliance

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the appliance's Prometheus counters, written by hand in the
// text exposition format by WriteMetrics.
type metrics struct {
	mu          sync.Mutex
	jobs        map[[2]string]int64 // kind, status → count
	durSum      map[string]float64
	durCount    map[string]int64
	running     atomic.Int64
	queued      atomic.Int64
	interrupted atomic.Int64
	storeErrors atomic.Int64
	protBytes   atomic.Int64 // bytes read from sources
	storedBytes atomic.Int64 // bytes added to the shard stores
	restBytes   atomic.Int64
}

func (m *metrics) jobQueued(kind string) { m.queued.Add(1) }

func (m *metrics) jobStarted(kind string) {
	m.queued.Add(-1)
	m.running.Add(1)
}

func (m *metrics) jobDone(kind string, err error, d time.Duration) {
	m.running.Add(-1)
	st := "success"
	if err != nil {
		st = "error"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jobs == nil {
		m.jobs, m.durSum, m.durCount = map[[2]string]int64{}, map[string]float64{}, map[string]int64{}
	}
	m.jobs[[2]string{kind, st}]++
	m.durSum[kind] += d.Seconds()
	m.durCount[kind]++
}

// WriteMetrics writes the metrics in Prometheus text format.
func (a *Appliance) WriteMetrics(w io.Writer) {
	m := &a.metrics
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	m.mu.Lock()
	p("# HELP cairn_jobs_total Jobs finished, by kind and result.")
	p("# TYPE cairn_jobs_total counter")
	keys := make([][2]string, 0, len(m.jobs))
	for k := range m.jobs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		p("cairn_jobs_total{kind=%q,status=%q} %d", k[0], k[1], m.jobs[k])
	}
	p("# HELP cairn_job_duration_seconds Time jobs took, by kind.")
	p("# TYPE cairn_job_duration_seconds summary")
	kinds := make([]string, 0, len(m.durSum))
	for k := range m.durSum {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		p("cairn_job_duration_seconds_sum{kind=%q} %g", k, m.durSum[k])
		p("cairn_job_duration_seconds_count{kind=%q} %d", k, m.durCount[k])
	}
	m.mu.Unlock()
	gauge := func(name, help string, v int64, typ string) {
		p("# HELP %s %s", name, help)
		p("# TYPE %s %s", name, typ)
		p("%s %d", name, v)
	}
	gauge("cairn_jobs_running", "Jobs running now.", m.running.Load(), "gauge")
	gauge("cairn_jobs_queued", "Jobs waiting for a worker.", m.queued.Load(), "gauge")
	gauge("cairn_jobs_interrupted_total", "Jobs found interrupted at start-up.", m.interrupted.Load(), "counter")
	gauge("cairn_state_errors_total", "Failures to persist state.", m.storeErrors.Load(), "counter")
	gauge("cairn_protected_bytes_total", "Bytes read from protected resources.", m.protBytes.Load(), "counter")
	gauge("cairn_stored_bytes_total", "Bytes protections added to the repository.", m.storedBytes.Load(), "counter")
	gauge("cairn_restored_bytes_total", "Bytes of resources restored.", m.restBytes.Load(), "counter")
	a.mu.Lock()
	byStatus := map[string]int{}
	for _, c := range a.checkpoints {
		byStatus[c.Status]++
	}
	a.mu.Unlock()
	p("# HELP cairn_checkpoints Checkpoints by status.")
	p("# TYPE cairn_checkpoints gauge")
	sts := make([]string, 0, len(byStatus))
	for s := range byStatus {
		sts = append(sts, s)
	}
	sort.Strings(sts)
	for _, s := range sts {
		p("cairn_checkpoints{status=%q} %d", s, byStatus[s])
	}
}
