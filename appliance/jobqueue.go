package appliance

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// maxQueuedTotal bounds the jobs waiting across all projects, so that
// many projects each under their own limit cannot grow the queue without
// end.
const maxQueuedTotal = 4096

// jobQueue holds the jobs waiting for a worker, one FIFO per project. A
// worker takes the oldest job of the next project in round-robin order
// that is below its running limit, so a project with a long queue, or
// with all its allowed jobs running, never holds up another project's
// jobs: they start as soon as a worker is free.
type jobQueue struct {
	maxQueued  int // per project, waiting (not running)
	maxRunning int // per project

	mu      sync.Mutex
	waiting map[string][]queued
	running map[string]int
	// ring lists the projects with waiting jobs in the order they are
	// served; a project moves to the back when one of its jobs starts.
	ring  []string
	total int
	// changed is closed (and replaced) whenever a job is queued or
	// finishes, waking the workers waiting in take.
	changed chan struct{}
}

func newJobQueue(maxQueued, maxRunning int) *jobQueue {
	return &jobQueue{maxQueued: maxQueued, maxRunning: maxRunning,
		waiting: map[string][]queued{}, running: map[string]int{}, changed: make(chan struct{})}
}

// push queues q, or refuses it with ErrBusy when its project already has
// maxQueued jobs waiting or the appliance maxQueuedTotal.
func (jq *jobQueue) push(q queued) error {
	jq.mu.Lock()
	defer jq.mu.Unlock()
	p := q.j.ProjectID
	if n := len(jq.waiting[p]); n >= jq.maxQueued {
		return fmt.Errorf("project %s has %d jobs waiting, its limit (config key project_max_queued): "+
			"retry when some have started, or raise project_max_queued: %w", p, n, ErrBusy)
	}
	if jq.total >= maxQueuedTotal {
		return fmt.Errorf("the appliance has %d jobs waiting across all projects, its limit: retry when some have started: %w",
			jq.total, ErrBusy)
	}
	if len(jq.waiting[p]) == 0 {
		jq.ring = append(jq.ring, p)
	}
	jq.waiting[p] = append(jq.waiting[p], q)
	jq.total++
	jq.wakeLocked()
	return nil
}

// take waits for a job a worker may start and counts it as running; the
// worker calls done when it ends. It reports false once ctx is done.
func (jq *jobQueue) take(ctx context.Context) (queued, bool) {
	for {
		if ctx.Err() != nil {
			return queued{}, false // a job taken now would only be cut off
		}
		jq.mu.Lock()
		if q, ok := jq.nextLocked(); ok {
			jq.mu.Unlock()
			return q, true
		}
		changed := jq.changed
		jq.mu.Unlock()
		select {
		case <-ctx.Done():
			return queued{}, false
		case <-changed:
		}
	}
}

// nextLocked pops the oldest job of the first project in the ring that
// may start another.
func (jq *jobQueue) nextLocked() (queued, bool) {
	for i, p := range jq.ring {
		if jq.running[p] >= jq.maxRunning {
			continue
		}
		w := jq.waiting[p]
		q := w[0]
		w[0] = queued{} // drop the closure for the collector
		jq.ring = slices.Delete(jq.ring, i, i+1)
		if len(w) > 1 {
			jq.waiting[p] = w[1:]
			jq.ring = append(jq.ring, p)
		} else {
			delete(jq.waiting, p)
		}
		jq.total--
		jq.running[p]++
		return q, true
	}
	return queued{}, false
}

// done ends a job take handed out, letting its project start another.
func (jq *jobQueue) done(project string) {
	jq.mu.Lock()
	defer jq.mu.Unlock()
	if jq.running[project]--; jq.running[project] <= 0 {
		delete(jq.running, project)
	}
	jq.wakeLocked()
}

func (jq *jobQueue) wakeLocked() {
	close(jq.changed)
	jq.changed = make(chan struct{})
}
