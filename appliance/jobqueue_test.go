package appliance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn/plugins"
)

// blockProject makes the hook plugin hold every protection of project
// until the test ends (or release is called), and counts how many of
// them run at once.
type blockProject struct {
	entered chan struct{} // one send per protection of the project
	once    sync.Once
	release chan struct{}
	inside  atomic.Int32
	most    atomic.Int32
}

func (e *testEnv) blockProject(project string) *blockProject {
	b := &blockProject{entered: make(chan struct{}, 1024), release: make(chan struct{})}
	e.hook.request = func(req plugins.ProtectRequest) {
		if req.Project != project {
			return
		}
		n := b.inside.Add(1)
		for m := b.most.Load(); n > m && !b.most.CompareAndSwap(m, n); m = b.most.Load() {
		}
		b.entered <- struct{}{}
		<-b.release
		b.inside.Add(-1)
	}
	// Registered after openEnv's cleanup, so it runs first: the workers
	// are free again when the appliance stops.
	e.t.Cleanup(b.Release)
	return b
}

func (b *blockProject) Release() { b.once.Do(func() { close(b.release) }) }

// waitEntered waits for the next held protection to start.
func (b *blockProject) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-b.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no protection of the blocked project started")
	}
}

// TestFloodingProjectDoesNotStarveOthers: one project queues many
// protections that never finish; another project's protection still
// starts and finishes on the free worker while the flood waits, and the
// flood never holds more than project_max_running workers.
func TestFloodingProjectDoesNotStarveOthers(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true) // 2 workers: 1 per project
	if e.cfg.ProjectMaxRunning != 1 {
		t.Fatalf("project_max_running defaulted to %d with 2 workers, want 1", e.cfg.ProjectMaxRunning)
	}
	// Two volumes: protections of one resource wait for each other.
	id1, _ := e.volume("a.img", 16<<10)
	id2, _ := e.volume("b.img", 16<<10)
	flood, other := e.plan("flood", id1), e.plan("other", id2)
	b := e.blockProject("flood")
	ctx := context.Background()
	var floodIDs []string
	for range 8 {
		cp, err := e.a.CreateCheckpoint(ctx, "flood", ProviderID, flood.ID, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		floodIDs = append(floodIDs, cp.ID)
	}
	b.waitEntered(t)
	cp, err := e.a.CreateCheckpoint(ctx, "other", ProviderID, other.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c := e.waitCheckpoint("other", cp.ID, CheckpointAvailable, CheckpointError); c.Status != CheckpointAvailable {
		t.Fatalf("other project's checkpoint: %s (%s)", c.Status, c.ErrorReason)
	}
	for _, id := range floodIDs {
		if c, _ := e.a.Checkpoint("flood", ProviderID, id); c.Status != CheckpointProtecting {
			t.Fatalf("flood checkpoint %s is %s before the flood was released", id, c.Status)
		}
	}
	if m := b.most.Load(); m != 1 {
		t.Fatalf("%d protections of the flooding project ran at once, want project_max_running = 1", m)
	}
	b.Release()
	for _, id := range floodIDs {
		if c := e.waitCheckpoint("flood", id, CheckpointAvailable, CheckpointError); c.Status != CheckpointAvailable {
			t.Fatalf("flood checkpoint %s: %s (%s)", id, c.Status, c.ErrorReason)
		}
	}
}

// TestProjectQueueLimit: past project_max_queued waiting jobs a project's
// requests are refused with ErrBusy naming the limit, other projects are
// not, a refused request leaves no operation log behind, and a scheduled
// run refused so is recorded as a failed operation log.
func TestProjectQueueLimit(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC)
	clk := newClock(t0)
	cfg := testConfig(t)
	cfg.ProjectMaxQueued = 3
	e := openEnv(t, cfg, clk, true)
	id1, _ := e.volume("a.img", 16<<10)
	id2, _ := e.volume("b.img", 16<<10)
	p, o := e.plan("busy", id1), e.plan("calm", id2)
	b := e.blockProject("busy")
	ctx := context.Background()
	var ids []string
	create := func(project, plan string) error {
		cp, err := e.a.CreateCheckpoint(ctx, project, ProviderID, plan, nil, "")
		if err == nil {
			ids = append(ids, cp.ID)
		}
		return err
	}
	if err := create("busy", p.ID); err != nil {
		t.Fatal(err)
	}
	b.waitEntered(t) // running, no longer waiting
	for i := range 3 {
		if err := create("busy", p.ID); err != nil {
			t.Fatalf("queued job %d: %v", i+1, err)
		}
	}
	err := create("busy", p.ID)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "project_max_queued") || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("job over the queue limit: %v, want ErrBusy naming the project and project_max_queued", err)
	}
	if err := create("calm", o.ID); err != nil {
		t.Fatalf("another project's job refused: %v", err)
	}
	if n := len(e.a.OperationLogs("busy")); n != 4 {
		t.Fatalf("%d operation logs for busy, want 4 (none for the refused request)", n)
	}

	tr, err := e.a.CreateTrigger("busy", "every5", "time", map[string]string{"pattern": "*/5 * * * *", "window": "60"})
	if err != nil {
		t.Fatal(err)
	}
	op, err := e.a.CreateScheduledOperation(context.Background(), "busy", "op", "", "protect", tr.ID,
		map[string]string{"plan_id": p.ID, "provider_id": ProviderID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.a.Tick(ctx) // sets the next run
	clk.Set(t0.Add(5 * time.Minute))
	e.a.Tick(ctx) // due, but the queue is full
	var skipped []OperationLog
	for _, l := range e.a.OperationLogs("busy") {
		if l.ScheduledOperationID == op.ID {
			skipped = append(skipped, l)
		}
	}
	if len(skipped) != 1 || skipped[0].Status != "error" || !strings.Contains(skipped[0].ErrorInfo, "project_max_queued") ||
		skipped[0].CheckpointID != "" || skipped[0].EndedAt.IsZero() {
		t.Fatalf("scheduled run over the limit logged as %+v, want one error log naming project_max_queued", skipped)
	}

	b.Release()
	for _, id := range ids {
		project := "busy"
		if c, err := e.a.Checkpoint("calm", ProviderID, id); err == nil && c != nil {
			project = "calm"
		}
		if c := e.waitCheckpoint(project, id, CheckpointAvailable, CheckpointError); c.Status != CheckpointAvailable {
			t.Fatalf("checkpoint %s: %s (%s)", id, c.Status, c.ErrorReason)
		}
	}
}

// TestJobQueueOrder: workers take jobs round-robin over the projects, in
// order within each, skipping projects at their running limit.
func TestJobQueueOrder(t *testing.T) {
	job := func(project string, n int) queued {
		return queued{j: &job{ID: project + string(rune('0'+n)), ProjectID: project}}
	}
	tests := []struct {
		name       string
		maxRunning int
		push       []queued
		want       []string // IDs taken, in order, until nothing may start
	}{
		{"round robin", 10, []queued{job("a", 1), job("a", 2), job("a", 3), job("b", 1), job("c", 1), job("b", 2)},
			[]string{"a1", "b1", "c1", "a2", "b2", "a3"}},
		{"running limit", 1, []queued{job("a", 1), job("a", 2), job("b", 1), job("b", 2), job("c", 1)},
			[]string{"a1", "b1", "c1"}},
		{"limit two", 2, []queued{job("a", 1), job("a", 2), job("a", 3), job("b", 1)},
			[]string{"a1", "b1", "a2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jq := newJobQueue(100, tt.maxRunning)
			for _, q := range tt.push {
				if err := jq.push(q); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for {
				jq.mu.Lock()
				q, ok := jq.nextLocked()
				jq.mu.Unlock()
				if !ok {
					break
				}
				got = append(got, q.j.ID)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("took %v, want %v", got, tt.want)
			}
		})
	}
}

// TestJobQueueDoneWakesWorker: a worker waiting because its only
// project is at its running limit starts the next job once one ends.
func TestJobQueueDoneWakesWorker(t *testing.T) {
	jq := newJobQueue(10, 1)
	for _, id := range []string{"a1", "a2"} {
		if err := jq.push(queued{j: &job{ID: id, ProjectID: "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if q, ok := jq.take(ctx); !ok || q.j.ID != "a1" {
		t.Fatalf("first take: %v %v", q.j, ok)
	}
	got := make(chan string, 1)
	go func() {
		q, ok := jq.take(ctx)
		if !ok {
			got <- "cancelled"
			return
		}
		got <- q.j.ID
	}()
	jq.done("a")
	if id := <-got; id != "a2" {
		t.Fatalf("after done: took %s, want a2", id)
	}
	cancel()
	if _, ok := jq.take(ctx); ok {
		t.Fatal("take after cancel handed out a job")
	}
}

// TestJobLimitConfig: the limits' defaults follow workers, and negative
// limits are refused.
func TestJobLimitConfig(t *testing.T) {
	tests := []struct {
		workers, queued, running int
		wantQueued, wantRunning  int
		wantErr                  bool
	}{
		{workers: 0, wantQueued: 64, wantRunning: 1},
		{workers: 4, wantQueued: 64, wantRunning: 2},
		{workers: 5, queued: 10, running: 5, wantQueued: 10, wantRunning: 5},
		{workers: 1, wantQueued: 64, wantRunning: 1},
		{workers: 2, queued: -1, wantErr: true},
		{workers: 2, running: -3, wantErr: true},
	}
	for _, tt := range tests {
		c := Config{Workers: tt.workers, ProjectMaxQueued: tt.queued, ProjectMaxRunning: tt.running}
		err := c.Fill()
		if tt.wantErr {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%+v: Fill = %v, want ErrInvalid", tt, err)
			}
			continue
		}
		if err != nil || c.ProjectMaxQueued != tt.wantQueued || c.ProjectMaxRunning != tt.wantRunning {
			t.Errorf("%+v: queued %d running %d (%v)", tt, c.ProjectMaxQueued, c.ProjectMaxRunning, err)
		}
	}
}
