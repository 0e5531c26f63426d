package appliance

import (
	"context"
	"errors"
	"testing"
	"time"

	"cairn/plugins"
)

// TestProtectTransferProgress: a running protection publishes the bytes
// its plugin reports, with the rate and time left, to lists; the finished
// checkpoint drops them and shows 100%.
func TestProtectTransferProgress(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(start)
	e := openEnv(t, testConfig(t), clk, true)
	idA, _ := e.volume("a.img", 64<<10)
	idB, _ := e.volume("b.img", 64<<10)
	reported, release := make(chan struct{}), make(chan struct{})
	first := true
	e.hook.request = func(req plugins.ProtectRequest) {
		if !first || req.Progress == nil {
			return
		}
		first = false
		clk.Set(start.Add(2 * time.Second))
		req.Progress(100, 400)
		close(reported)
		<-release
	}
	p := e.plan("proj", idA, idB)
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-reported:
	case <-time.After(30 * time.Second):
		t.Fatal("the plugin got no Progress callback")
	}
	cps, err := e.a.Checkpoints("proj", ProviderID)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints %v, %v", cps, err)
	}
	got := cps[0].Transfer
	want := Transfer{DoneBytes: 100, TotalBytes: 400, BytesPerSec: 50, ETASeconds: 6, StartedAt: start, UpdatedAt: start.Add(2 * time.Second)}
	if got != want {
		t.Errorf("transfer while protecting %+v, want %+v", got, want)
	}
	// First of two resources, a quarter read: 12%.
	if cps[0].Progress != 12 {
		t.Errorf("progress %d while protecting, want 12", cps[0].Progress)
	}
	close(release)
	c := e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)
	if !c.Transfer.StartedAt.IsZero() || c.Transfer.DoneBytes != 0 || c.Progress != 100 {
		t.Errorf("finished checkpoint: transfer %+v, progress %d; want none and 100", c.Transfer, c.Progress)
	}
}

// TestRestoreTransferProgress: a running restore shows the bytes its
// plugin reports; the finished one drops them.
func TestRestoreTransferProgress(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(start)
	e := openEnv(t, testConfig(t), clk, true)
	id, _ := e.volume("a.img", 64<<10)
	p := e.plan("proj", id)
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)
	reported, release := make(chan struct{}), make(chan struct{})
	e.hook.restore = func(req plugins.RestoreRequest) {
		if req.Progress == nil {
			close(reported)
			return
		}
		clk.Set(start.Add(4 * time.Second))
		req.Progress(200, 1000)
		close(reported)
		<-release
	}
	r, err := e.a.CreateRestore(context.Background(), "proj", ProviderID, cp.ID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-reported
	got, err := e.a.GetRestore("proj", "restore", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Transfer{DoneBytes: 200, TotalBytes: 1000, BytesPerSec: 50, ETASeconds: 16, StartedAt: start, UpdatedAt: start.Add(4 * time.Second)}
	if got.Transfer != want || got.Progress != 20 {
		t.Errorf("restore while running: transfer %+v progress %d, want %+v and 20", got.Transfer, got.Progress, want)
	}
	close(release)
	deadline := time.Now().Add(30 * time.Second)
	for got.Status == RestoreInProgress && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		got, _ = e.a.GetRestore("proj", "restore", r.ID)
	}
	if got.Status != RestoreSuccess || got.Progress != 100 || got.Transfer != (Transfer{}) {
		t.Errorf("finished restore: %s, progress %d, transfer %+v", got.Status, got.Progress, got.Transfer)
	}
}

func TestTransferUpdate(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name              string
		done, total       int64
		after             time.Duration
		rate, eta, wantTo int64
	}{
		{"nothing read yet", 0, 100, time.Second, 0, -1, 100},
		{"no time passed", 50, 100, 0, 0, -1, 100},
		{"half in 5s", 50, 100, 5 * time.Second, 10, 5, 100},
		{"total below done", 300, 200, 3 * time.Second, 100, 0, 300},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := Transfer{StartedAt: t0}
			tr.update(c.done, c.total, t0.Add(c.after))
			if tr.BytesPerSec != c.rate || tr.ETASeconds != c.eta || tr.TotalBytes != c.wantTo {
				t.Fatalf("got rate %d eta %d total %d, want %d %d %d", tr.BytesPerSec, tr.ETASeconds, tr.TotalBytes, c.rate, c.eta, c.wantTo)
			}
		})
	}
}

// TestResourcesAndSummaries: the overview of resources (with search) and
// of projects, each confined to the project asked for.
func TestResourcesAndSummaries(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	idA, _ := e.volume("alpha.img", 64<<10)
	idB, _ := e.volume("beta.img", 64<<10)
	pa := e.plan("projA", idA, idB)
	pb := e.plan("projB", idB)
	cp, err := e.a.CreateCheckpoint(context.Background(), "projA", ProviderID, pa.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	c := e.waitCheckpoint("projA", cp.ID, CheckpointAvailable)

	rs := e.a.Resources("projA", "")
	if len(rs) != 2 {
		t.Fatalf("projA resources %+v, want 2", rs)
	}
	var stored int64
	for _, r := range rs {
		if r.ProjectID != "projA" || r.LastCheckpointID != cp.ID || r.LastStatus != ResourceAvailable || r.Checkpoints != 1 ||
			len(r.PlanIDs) != 1 || r.PlanIDs[0] != pa.ID || !r.LastSuccessAt.Equal(c.CreatedAt) {
			t.Errorf("resource %+v", r)
		}
		stored += r.StoredBytes
	}
	var want, logical, read int64
	for _, rb := range c.Resources {
		want += rb.StoredBytes
		logical += rb.Size
		read += rb.ReadBytes
	}
	if stored != want || want == 0 {
		t.Errorf("stored bytes %d, want the checkpoint's %d", stored, want)
	}
	if rs := e.a.Resources("projA", "ALPHA"); len(rs) != 1 || rs[0].ID != idA {
		t.Errorf("search ALPHA: %+v, want only %s", rs, idA)
	}
	if rs := e.a.Resources("projA", idB[:12]); len(rs) != 1 || rs[0].ID != idB {
		t.Errorf("search by ID prefix: %+v, want only %s", rs, idB)
	}
	if rs := e.a.Resources("projB", "alpha"); len(rs) != 0 {
		t.Errorf("projB sees projA's resource: %+v", rs)
	}
	if rs := e.a.Resources("projB", ""); len(rs) != 1 || rs[0].LastCheckpointID != "" || rs[0].PlanIDs[0] != pb.ID {
		t.Errorf("projB resources %+v, want its one unprotected resource", rs)
	}

	all := e.a.Summaries(AllProjects)
	if len(all) != 2 || all[0].ProjectID != "projA" || all[1].ProjectID != "projB" {
		t.Fatalf("summaries %+v", all)
	}
	if s := all[0]; s.Resources != 2 || s.Plans != 1 || s.Checkpoints != 1 || s.StoredBytes != want || !s.LastSuccessAt.Equal(c.CreatedAt) || s.Failures24h != 0 ||
		s.LogicalBytes != logical || logical != 128<<10 || s.ReadBytes != read {
		t.Errorf("projA summary %+v", s)
	}
	if s := all[1]; s.Resources != 1 || s.Checkpoints != 0 || s.StoredBytes != 0 || !s.LastSuccessAt.IsZero() {
		t.Errorf("projB summary %+v", s)
	}
	if s := e.a.Summaries("projB"); len(s) != 1 || s[0].ProjectID != "projB" {
		t.Errorf("projB's own summary %+v", s)
	}
	if s := e.a.Summaries("empty"); len(s) != 1 || s[0].ProjectID != "empty" || s[0].Resources != 0 {
		t.Errorf("empty project's summary %+v", s)
	}

	// A failed protection counts among the failures of the last 24 hours,
	// and no longer a day later.
	e.hook.before = func(context.Context) error { return errors.New("disk on fire") }
	cp2, err := e.a.CreateCheckpoint(context.Background(), "projB", ProviderID, pb.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e.waitCheckpoint("projB", cp2.ID, CheckpointError)
	if s := e.a.Summaries("projB"); s[0].Failures24h != 1 {
		t.Errorf("failures after a failed protection: %+v", s[0])
	}
	clk.Set(clk.Now().Add(25 * time.Hour))
	if s := e.a.Summaries("projB"); s[0].Failures24h != 0 {
		t.Errorf("failures a day later: %+v", s[0])
	}
}
