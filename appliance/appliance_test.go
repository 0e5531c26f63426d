package appliance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn/dedup"
	"cairn/plugins"
	"cairn/plugins/file"
)

// fakeClock is the injected clock: it moves only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// hookPlugin wraps the file plugin so tests can block or fail its calls.
type hookPlugin struct {
	*file.Plugin
	before func(ctx context.Context) error
	// request, if set, sees each ProtectRequest.
	request func(req plugins.ProtectRequest)
	// options, if set, replaces the file plugin's options schema.
	options map[string]any
	protect func(ctx context.Context, b *plugins.Backup, err error) (*plugins.Backup, error)
	del     func(ctx context.Context, id string) error
	// restore, if set, sees each RestoreRequest first.
	restore func(req plugins.RestoreRequest)
}

func (h *hookPlugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	if h.restore != nil {
		h.restore(req)
	}
	return h.Plugin.Restore(ctx, repo, req)
}

func (h *hookPlugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	if h.before != nil {
		if err := h.before(ctx); err != nil {
			return nil, err
		}
	}
	if h.request != nil {
		h.request(req)
	}
	if h.options != nil {
		req.Options = nil // the file plugin itself takes none
	}
	b, err := h.Plugin.Protect(ctx, repo, req)
	if h.protect != nil {
		return h.protect(ctx, b, err)
	}
	return b, err
}

func (h *hookPlugin) Schemas() plugins.Schemas {
	s := h.Plugin.Schemas()
	if h.options != nil {
		s.Options = h.options
	}
	return s
}

func (h *hookPlugin) Delete(ctx context.Context, repo *dedup.Repository, id string) error {
	if h.del != nil {
		if err := h.del(ctx, id); err != nil {
			return err
		}
	}
	return h.Plugin.Delete(ctx, repo, id)
}

type testEnv struct {
	t    *testing.T
	a    *Appliance
	cfg  Config
	clk  *fakeClock
	hook *hookPlugin
	stop func()
}

func testConfig(t *testing.T) Config {
	return Config{DataDir: t.TempDir(), Workers: 2, PruneInterval: Duration(-1)}
}

// openEnv opens an appliance on cfg with the fake clock and a hookable
// file plugin. With run, its workers run until the test ends.
func openEnv(t *testing.T, cfg Config, clk *fakeClock, run bool) *testEnv {
	t.Helper()
	full := cfg
	full.fill()
	fp, err := file.New(full.FileRoots, full.RestoreDir, file.Options{Devices: full.FileDevices})
	if err != nil {
		t.Fatal(err)
	}
	h := &hookPlugin{Plugin: fp}
	reg, err := plugins.NewRegistry(h)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(context.Background(), cfg, Options{Now: clk.Now, Log: slog.New(slog.DiscardHandler), Plugins: reg})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, a: a, cfg: a.Config(), clk: clk, hook: h}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if run {
		go func() { _ = a.Run(ctx); close(done) }()
	} else {
		close(done)
	}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := a.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

// volume writes a file of n random bytes into the first file root and
// returns its instance ID.
func (e *testEnv) volume(name string, n int) (string, []byte) {
	e.t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	p := filepath.Join(e.cfg.FileRoots[0], name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return file.InstanceID(p), b
}

func (e *testEnv) plan(project string, ids ...string) *Plan {
	e.t.Helper()
	var rs []PlanResource
	for _, id := range ids {
		rs = append(rs, PlanResource{ID: id, Type: file.Type})
	}
	name := "p"
	p, err := e.a.CreatePlan(context.Background(), project, PlanInput{Name: &name, ProviderID: ProviderID, Resources: rs})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *testEnv) waitCheckpoint(project, id string, want ...string) *Checkpoint {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.a.Checkpoint(project, ProviderID, id)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, w := range want {
			if c.Status == w {
				return c
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("checkpoint %s: status %s (reason %q), want %v", id, c.Status, c.ErrorReason, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProtectRestoreVerifyDelete(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	id1, data1 := e.volume("a.img", 300<<10)
	id2, _ := e.volume("b.img", 10<<10)
	p := e.plan("proj", id1, id2)
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if cp.Status != CheckpointProtecting {
		t.Fatalf("new checkpoint status %s", cp.Status)
	}
	c := e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)
	if c.Progress != 100 || len(c.Resources) != 2 {
		t.Fatalf("checkpoint %+v", c)
	}
	var total int64
	for _, r := range c.Resources {
		if r.Status != ResourceAvailable || r.BackupID == "" {
			t.Fatalf("resource %+v", r)
		}
		total += r.Size
	}
	if got := c.ExtraInfo["size_bytes"]; got != total || total != 310<<10 {
		t.Fatalf("size_bytes %v, resources %d", got, total)
	}

	target := filepath.Join(e.cfg.RestoreDir, "out.img")
	r, err := e.a.CreateRestore(context.Background(), "proj", ProviderID, cp.ID, "",
		map[string]any{file.Type + "#" + id1: map[string]any{"restore_path": target}})
	if err != nil {
		t.Fatal(err)
	}
	r = waitRun(t, e.a, "proj", "restore", r.ID)
	if r.Status != RestoreSuccess {
		t.Fatalf("restore %+v", r)
	}
	got, err := os.ReadFile(target)
	if err != nil || !bytes.Equal(got, data1) {
		t.Fatalf("restored file differs (err %v)", err)
	}
	v, err := e.a.CreateVerification(context.Background(), "proj", ProviderID, cp.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v = waitRun(t, e.a, "proj", "verify", v.ID); v.Status != RestoreSuccess {
		t.Fatalf("verification %+v", v)
	}
	// The verification's progress is stored under its own kind.
	if n := countKind(t, e.a.st, "verifys"); n != 0 {
		t.Fatalf("%d objects of a stray kind", n)
	}
	if n := countKind(t, e.a.st, "verifications"); n != 1 {
		t.Fatalf("%d stored verifications, want 1", n)
	}

	if err := e.a.DeleteCheckpoint(context.Background(), "proj", ProviderID, cp.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Checkpoint("proj", ProviderID, cp.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted checkpoint: %v", err)
	}
	rcs, err := repoOf(t, e.a, "proj").Checkpoints(context.Background())
	if err != nil || len(rcs) != 0 {
		t.Fatalf("repository checkpoints after delete: %d (%v)", len(rcs), err)
	}
}

func waitRun(t *testing.T, a *Appliance, project, kind, id string) *Restore {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := a.GetRestore(project, kind, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != RestoreInProgress {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s still in progress", kind, id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFailingResourceLeavesNoBackups(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	id1, _ := e.volume("a.img", 64<<10)
	id2, _ := e.volume("b.img", 64<<10)
	p := e.plan("proj", id1, id2)
	n := 0
	var mu sync.Mutex
	e.hook.before = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 2 {
			return errors.New("disk on fire")
		}
		return nil
	}
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	c := e.waitCheckpoint("proj", cp.ID, CheckpointError)
	for _, r := range c.Resources {
		if r.Status != ResourceError || r.BackupID != "" || r.Reason == "" {
			t.Fatalf("resource %+v", r)
		}
	}
	if c.ErrorReason == "" {
		t.Fatal("no error reason")
	}
	rcs, _ := repoOf(t, e.a, "proj").Checkpoints(context.Background())
	if len(rcs) != 0 {
		t.Fatalf("%d repository checkpoints left", len(rcs))
	}
}

// TestConcurrentReadsDuringJobs reads and encodes checkpoints while jobs
// finish (ExtraInfo is written then); run with -race.
func TestConcurrentReadsDuringJobs(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	id, _ := e.volume("a.img", 16<<10)
	p := e.plan("proj", id)
	var ids []string
	for range 4 {
		cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, map[string]any{"k": "v"}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cp.ID)
		go func() { _, _ = json.Marshal(cp) }() // the returned copy is the caller's
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cps, _ := e.a.Checkpoints("proj", ProviderID)
				_, _ = json.Marshal(cps)
				for _, id := range ids {
					c, _ := e.a.Checkpoint("proj", ProviderID, id)
					_, _ = json.Marshal(c)
				}
				_, _ = json.Marshal(e.a.Plans("proj"))
			}
		})
	}
	for _, id := range ids {
		e.waitCheckpoint("proj", id, CheckpointAvailable)
	}
	close(stop)
	wg.Wait()
}

// TestDeleteDoesNotHoldLock blocks a plugin's Delete and checks that the
// appliance still answers meanwhile, and that the checkpoint is
// "deleting" (a second delete conflicts, restores are refused).
func TestDeleteDoesNotHoldLock(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	id, _ := e.volume("a.img", 16<<10)
	p := e.plan("proj", id)
	cp, _ := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)

	entered, release := make(chan struct{}), make(chan struct{})
	e.hook.del = func(ctx context.Context, id string) error {
		close(entered)
		<-release
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- e.a.DeleteCheckpoint(context.Background(), "proj", ProviderID, cp.ID) }()
	<-entered
	got := make(chan struct{})
	go func() {
		_ = e.a.Plans("proj")
		c, err := e.a.Checkpoint("proj", ProviderID, cp.ID)
		if err != nil || c.Status != CheckpointDeleting {
			t.Errorf("during delete: %v %+v", err, c)
		}
		if err := e.a.DeleteCheckpoint(context.Background(), "proj", ProviderID, cp.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("second delete: %v", err)
		}
		if _, err := e.a.CreateRestore(context.Background(), "proj", ProviderID, cp.ID, "", nil); !errors.Is(err, ErrConflict) {
			t.Errorf("restore of a deleting checkpoint: %v", err)
		}
		close(got)
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("appliance lock held during plugin Delete")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDeleteFailureMarksError(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	id, _ := e.volume("a.img", 16<<10)
	p := e.plan("proj", id)
	cp, _ := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)
	e.hook.del = func(ctx context.Context, id string) error { return errors.New("store offline") }
	if err := e.a.DeleteCheckpoint(context.Background(), "proj", ProviderID, cp.ID); err == nil {
		t.Fatal("delete succeeded")
	}
	if c := e.waitCheckpoint("proj", cp.ID, CheckpointError); c.ErrorReason == "" {
		t.Fatal("no error reason")
	}
	e.hook.del = nil
	if err := e.a.DeleteCheckpoint(context.Background(), "proj", ProviderID, cp.ID); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// TestScheduleAndRetention drives the operation engine with the fake
// clock: the operation fires at the pattern's times (only within the
// window) and retention keeps max_backups checkpoints.
func TestScheduleAndRetention(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC)
	clk := newClock(t0)
	e := openEnv(t, testConfig(t), clk, true)
	id, _ := e.volume("a.img", 16<<10)
	p := e.plan("proj", id)
	tr, err := e.a.CreateTrigger("proj", "every5", "time", map[string]string{"pattern": "*/5 * * * *", "window": "60"})
	if err != nil {
		t.Fatal(err)
	}
	op, err := e.a.CreateScheduledOperation(context.Background(), "proj", "op", "", "protect", tr.ID,
		map[string]string{"plan_id": p.ID, "provider_id": ProviderID, "max_backups": "2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tick := func(at time.Time) []*Checkpoint {
		t.Helper()
		clk.Set(at)
		e.a.Tick(ctx)
		deadline := time.Now().Add(30 * time.Second)
		for {
			cps, _ := e.a.Checkpoints("proj", ProviderID)
			busy := false
			for _, c := range cps {
				busy = busy || c.Status != CheckpointAvailable
			}
			if !busy {
				return cps
			}
			if time.Now().After(deadline) {
				t.Fatalf("checkpoints still busy: %+v", cps)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if cps := tick(t0); len(cps) != 0 {
		t.Fatalf("fired at creation: %d", len(cps))
	}
	o, _ := e.a.GetScheduledOperation("proj", op.ID)
	if want := time.Date(2030, 1, 1, 0, 5, 0, 0, time.UTC); !o.NextRun.Equal(want) {
		t.Fatalf("next run %s, want %s", o.NextRun, want)
	}
	if cps := tick(t0.Add(4 * time.Minute)); len(cps) != 0 {
		t.Fatalf("fired early: %d", len(cps))
	}
	var fired []time.Time
	for i, m := range []int{5, 10, 15, 20} {
		at := time.Date(2030, 1, 1, 0, m, 10, 0, time.UTC)
		cps := tick(at)
		fired = append(fired, at)
		want := min(i+1, 2)
		if len(cps) != want {
			t.Fatalf("after the fire at %s: %d checkpoints, want %d", at, len(cps), want)
		}
		// Retention keeps the newest.
		for _, c := range cps {
			if c.CreatedAt.Before(fired[max(0, len(fired)-2)]) {
				t.Fatalf("retention kept %s", c.CreatedAt)
			}
			if c.ScheduledOpID != op.ID {
				t.Fatalf("scheduled_operation_id %q", c.ScheduledOpID)
			}
		}
	}
	// Late past the window: skipped, rescheduled.
	cps := tick(time.Date(2030, 1, 1, 0, 27, 0, 0, time.UTC))
	if len(cps) != 2 {
		t.Fatalf("%d checkpoints after a late tick", len(cps))
	}
	for _, c := range cps {
		if c.CreatedAt.After(fired[len(fired)-1]) {
			t.Fatalf("fired outside its window at %s", c.CreatedAt)
		}
	}
	o, _ = e.a.GetScheduledOperation("proj", op.ID)
	if want := time.Date(2030, 1, 1, 0, 30, 0, 0, time.UTC); !o.NextRun.Equal(want) {
		t.Fatalf("next run after a skip %s, want %s", o.NextRun, want)
	}
	// The repository holds only the kept checkpoints' backups.
	rcs, _ := repoOf(t, e.a, "proj").Checkpoints(ctx)
	if len(rcs) != 2 {
		t.Fatalf("repository holds %d checkpoints, want 2", len(rcs))
	}
	// Delete logs were written for the expired ones.
	dels := 0
	for _, l := range e.a.OperationLogs("proj") {
		if l.OperationType == "delete" && l.Status == "success" {
			dels++
		}
	}
	if dels != 2 {
		t.Fatalf("%d delete logs, want 2", dels)
	}
}

func TestRetentionRules(t *testing.T) {
	// Two checkpoints a day (06:00 and 07:00) for five days, judged at
	// day 6, 00:00. Kept checkpoints are named "DD HH".
	cases := []struct {
		name string
		def  map[string]string
		want []string
	}{
		{"keep_last 1 + keep_daily 3", map[string]string{"keep_last": "1", "keep_daily": "3"}, []string{"05 07", "04 07", "03 07"}},
		{"max_backups 3", map[string]string{"max_backups": "3"}, []string{"05 07", "05 06", "04 07"}},
		{"retention_duration 2 days", map[string]string{"retention_duration": "2"}, []string{"05 07", "05 06", "04 07", "04 06"}},
		{"retention_duration beats keep_daily", map[string]string{"keep_daily": "5", "retention_duration": "3"}, []string{"05 07", "04 07", "03 07"}},
		{"retention_duration keeps the newest", map[string]string{"retention_duration": "1", "max_backups": "1"}, []string{"05 07"}},
		{"nothing set keeps all", map[string]string{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock(time.Date(2030, 1, 6, 0, 0, 0, 0, time.Local))
			e := openEnv(t, testConfig(t), clk, false)
			id, _ := e.volume("a.img", 4<<10)
			p := e.plan("proj", id)
			tr, err := e.a.CreateTrigger("proj", "t", "time", map[string]string{"pattern": "0 * * * *"})
			if err != nil {
				t.Fatal(err)
			}
			def := map[string]string{"plan_id": p.ID, "provider_id": ProviderID}
			maps.Copy(def, c.def)
			op, err := e.a.CreateScheduledOperation(context.Background(), "proj", "op", "", "retention_protect", tr.ID, def, nil)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			e.a.mu.Lock()
			for d := 1; d <= 5; d++ {
				for h := 6; h <= 7; h++ {
					c := &Checkpoint{ID: NewUUID(), ProjectID: "proj", ProviderID: ProviderID, Status: CheckpointAvailable,
						Plan: PlanRef{ID: p.ID}, CreatedAt: time.Date(2030, 1, d, h, 0, 0, 0, time.Local), ExtraInfo: map[string]any{}}
					e.a.checkpoints[c.ID] = c
					e.a.published.put(cloneCheckpoint(c))
					all = append(all, fmt.Sprintf("%02d %02d", d, h))
				}
			}
			dels := e.a.retentionLocked(op.ID)
			e.a.mu.Unlock()
			for _, d := range dels {
				if err := e.a.finishDelete(context.Background(), d); err != nil {
					t.Fatal(err)
				}
			}
			var kept []string
			for _, c := range e.a.checkpointsOf("proj") {
				kept = append(kept, c.CreatedAt.Local().Format("02 15"))
			}
			want := c.want
			if want == nil {
				want = all
			}
			slices.Sort(kept)
			want = slices.Sorted(slices.Values(want))
			if !slices.Equal(kept, want) {
				t.Fatalf("kept %v, want %v", kept, want)
			}
		})
	}
}

func (a *Appliance) checkpointsOf(project string) []*Checkpoint {
	cps, _ := a.Checkpoints(project, ProviderID)
	return cps
}

// TestCrashRecovery cuts a protection off after its plugin committed a
// repository checkpoint (the job record stays, as after kill -9), then
// restarts: the job is marked failed with the reason, its backup and a
// partial restore file are removed, and a later job succeeds.
func TestCrashRecovery(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	e := openEnv(t, cfg, clk, true)
	id, _ := e.volume("a.img", 64<<10)
	p := e.plan("proj", id)
	committed := make(chan struct{})
	e.hook.protect = func(ctx context.Context, b *plugins.Backup, err error) (*plugins.Backup, error) {
		close(committed)
		<-ctx.Done() // the daemon dies here
		return nil, ctx.Err()
	}
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	<-committed
	partial := file.PartialPath(filepath.Join(e.cfg.RestoreDir, "x.img"))
	if err := os.WriteFile(partial, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.stop()
	if n := storedCount(t, cfg.DataDir, "jobs"); n == 0 {
		t.Fatal("the interrupted job's record is gone before restart")
	}

	e2 := openEnv(t, cfg, clk, true)
	c, err := e2.a.Checkpoint("proj", ProviderID, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != CheckpointError || c.ErrorReason != ErrInterrupted.Error() {
		t.Fatalf("after restart: status %s reason %q", c.Status, c.ErrorReason)
	}
	for _, r := range c.Resources {
		if r.Status != ResourceError {
			t.Fatalf("resource %+v", r)
		}
	}
	rcs, _ := repoOf(t, e2.a, "proj").Checkpoints(context.Background())
	if len(rcs) != 0 {
		t.Fatalf("interrupted job left %d repository checkpoints", len(rcs))
	}
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial restore file survived: %v", err)
	}
	for _, l := range e2.a.OperationLogs("proj") {
		if l.CheckpointID == cp.ID && l.Status != "error" {
			t.Fatalf("operation log %+v", l)
		}
	}
	var buf bytes.Buffer
	e2.a.WriteMetrics(&buf)
	if !bytes.Contains(buf.Bytes(), []byte("cairn_jobs_interrupted_total 1")) {
		t.Fatalf("metrics:\n%s", buf.String())
	}
	cp2, err := e2.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e2.waitCheckpoint("proj", cp2.ID, CheckpointAvailable)
}

// TestInterruptedDeletionFinishes: a checkpoint left "deleting" by a
// crash is deleted on the next start.
func TestInterruptedDeletionFinishes(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	e := openEnv(t, cfg, clk, true)
	id, _ := e.volume("a.img", 16<<10)
	p := e.plan("proj", id)
	cp, _ := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)
	e.a.mu.Lock()
	e.a.beginDeleteLocked(e.a.checkpoints[cp.ID]) // and then the crash
	e.a.mu.Unlock()
	e.stop()
	e2 := openEnv(t, cfg, clk, false)
	if _, err := e2.a.Checkpoint("proj", ProviderID, cp.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("checkpoint after restart: %v", err)
	}
	if rcs, _ := repoOf(t, e2.a, "proj").Checkpoints(context.Background()); len(rcs) != 0 {
		t.Fatalf("%d repository checkpoints left", len(rcs))
	}
}

// TestPruneIsManaged: the prune Tick starts runs one at a time and is
// stopped and waited for on shutdown.
func TestPruneIsManaged(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	cfg.PruneInterval = Duration(time.Hour)
	e := openEnv(t, cfg, clk, false)
	var mu sync.Mutex
	starts, stopped := 0, false
	e.a.pruneHook = func(ctx context.Context) {
		mu.Lock()
		starts++
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.a.Tick(ctx)
	clk.Set(clk.Now().Add(2 * time.Hour))
	e.a.Tick(ctx) // due again, but the first is still running
	cancel()
	e.stop() // Close waits for the prune
	mu.Lock()
	defer mu.Unlock()
	if starts != 1 || !stopped {
		t.Fatalf("prune starts %d, stopped %v", starts, stopped)
	}
}

func TestCloneIsolation(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, false)
	id1, _ := e.volume("a.img", 4<<10)
	id2, _ := e.volume("b.img", 4<<10)
	p := e.plan("proj", id1)
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	// Updating the plan's resources must not change the checkpoint's plan
	// or earlier copies of the plan.
	if _, err := e.a.UpdatePlan(context.Background(), "proj", p.ID, PlanInput{Resources: []PlanResource{{ID: id2, Type: file.Type}}}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.a.Checkpoint("proj", ProviderID, cp.ID)
	if c.Plan.Resources[0].ID != id1 || p.Resources[0].ID != id1 {
		t.Fatal("plan update rewrote an earlier plan copy or a checkpoint's plan")
	}
	c.ExtraInfo["x"] = 1
	if c2, _ := e.a.Checkpoint("proj", ProviderID, cp.ID); c2.ExtraInfo["x"] != nil {
		t.Fatal("checkpoint copy shares ExtraInfo")
	}
}

func TestConfigDefaultsAndLoad(t *testing.T) {
	c := DefaultConfig("/d")
	want := Config{Listen: "127.0.0.1:8799", DataDir: "/d", Repository: "/d/projects/{project_id}/repo", RepositoryNamespace: "cairn-{project_id}", Auth: "noauth",
		FileRoots: []string{"/d/volumes"}, RestoreDir: "/d/restores", Workers: 2, ProjectMaxQueued: 64, ProjectMaxRunning: 1,
		MinInterval: Duration(time.Minute),
		Tick:        Duration(time.Second), PruneInterval: Duration(24 * time.Hour), PruneGrace: Duration(time.Hour), PlanQuota: 50,
		DefaultProject: "local"}
	gb, _ := json.Marshal(c)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("defaults\n got %s\nwant %s", gb, wb)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"good", `{"listen":"0.0.0.0:1","workers":4,"tick":"2s"}`, true},
		{"unknown key", `{"listn":"x"}`, false},
		{"bad duration", `{"tick":5}`, false},
		{"bad duration text", `{"tick":"soon"}`, false},
		{"not json", `listen=x`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".json")
			_ = os.WriteFile(p, []byte(tc.body), 0o600)
			_, err := LoadConfig(p)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
	k := Config{Auth: "keystone"}
	if err := k.Fill(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("keystone auth: %v", err)
	}
}

// TestProtectionsOfOneResourceDoNotOverlap: two plans share a volume; four
// checkpoints of them run on four workers, yet the plugin never protects
// the shared volume twice at once, plans sharing resources do not
// deadlock, and each later checkpoint is incremental on an earlier one.
func TestProtectionsOfOneResourceDoNotOverlap(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	cfg.Workers = 4
	e := openEnv(t, cfg, clk, true)
	shared, _ := e.volume("shared.img", 64<<10)
	other, _ := e.volume("other.img", 64<<10)
	p1, p2 := e.plan("proj", shared, other), e.plan("proj", other, shared)
	var inside, most atomic.Int32
	var previous sync.Map // backup IDs plugins were given as Previous
	e.hook.before = func(ctx context.Context) error {
		n := inside.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // widen the window an overlap would need
		inside.Add(-1)
		return nil
	}
	e.hook.request = func(req plugins.ProtectRequest) { previous.Store(req.Previous, true) }
	var ids []string
	for _, p := range []*Plan{p1, p2, p1, p2} {
		cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cp.ID)
	}
	for _, id := range ids {
		if c := e.waitCheckpoint("proj", id, CheckpointAvailable, CheckpointError); c.Status != CheckpointAvailable {
			t.Fatalf("checkpoint %s: %s (%s)", id, c.Status, c.ErrorReason)
		}
	}
	// Both plans hold both volumes, so every protection waits for the one
	// before: at most one plugin call runs at any time.
	if m := most.Load(); m != 1 {
		t.Fatalf("%d protections of the same resources ran at once, want 1", m)
	}
	n := 0
	previous.Range(func(k, _ any) bool {
		if k.(string) != "" {
			n++
		}
		return true
	})
	if n == 0 {
		t.Fatal("no protection was given a previous backup")
	}
}

// TestPlanParameters: a plan's parameters are checked against the
// plugins' option schemas when it is created, and each protection gets
// its resource's options (TYPE#ID over TYPE).
func TestPlanParameters(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	e.hook.options = map[string]any{"type": "object", "additionalProperties": false,
		"properties": map[string]any{"level": map[string]any{"type": "integer", "minimum": 1.0}}}
	a, _ := e.volume("a.img", 8<<10)
	b, _ := e.volume("b.img", 8<<10)
	res := []PlanResource{{ID: a, Type: file.Type}, {ID: b, Type: file.Type}}
	name := "p"
	create := func(params map[string]any) (*Plan, error) {
		return e.a.CreatePlan(context.Background(), "proj", PlanInput{Name: &name, ProviderID: ProviderID, Resources: res, Parameters: params})
	}
	bad := []map[string]any{
		{"OS::Nova::Server": map[string]any{}},                                  // not a type of the plan
		{file.Type + "#00000000-0000-0000-0000-000000000000": map[string]any{}}, // not a resource of the plan
		{file.Type: "level=3"},                                                  // not an object
		{file.Type: map[string]any{"bogus": 1.0}},                               // unknown option
		{file.Type: map[string]any{"level": 0.0}},                               // below the minimum
	}
	for _, params := range bad {
		if _, err := create(params); !errors.Is(err, ErrInvalid) {
			t.Errorf("parameters %v: err = %v, want ErrInvalid", params, err)
		}
	}
	p, err := create(map[string]any{file.Type: map[string]any{"level": 2.0}, file.Type + "#" + b: map[string]any{"level": 9.0}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]any{}
	e.hook.request = func(req plugins.ProtectRequest) {
		mu.Lock()
		defer mu.Unlock()
		got[req.Resource.ID] = req.Options["level"]
	}
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c := e.waitCheckpoint("proj", cp.ID, CheckpointAvailable, CheckpointError); c.Status != CheckpointAvailable {
		t.Fatalf("checkpoint: %s (%s)", c.Status, c.ErrorReason)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[a] != 2.0 || got[b] != 9.0 {
		t.Fatalf("options seen by the plugin: %v, want level 2 for %s and 9 for %s", got, a, b)
	}
}
