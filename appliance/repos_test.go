package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"cairn/dedup"
	"cairn/internal/testenv"
)

// repoOf returns project's repository, released when the test ends.
func repoOf(t *testing.T, a *Appliance, project string) *dedup.Repository {
	t.Helper()
	r, release, err := a.repos.get(t.Context(), project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return r
}

// TestProjectsDoNotShareRepositories: two projects protect the same bytes.
// Each pays for them in full (new_bytes reveals nothing of the other), each
// repository holds only its own project's checkpoints, and the two
// repositories differ in ID and chunk-ID key, so no chunk of one can be
// found, or probed for, in the other.
func TestProjectsDoNotShareRepositories(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	id, _ := e.volume("same.img", 512<<10)
	newBytes := map[string]int64{}
	for _, project := range []string{"alpha", "beta"} {
		p := e.plan(project, id)
		cp, err := e.a.CreateCheckpoint(context.Background(), project, ProviderID, p.ID, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		c := e.waitCheckpoint(project, cp.ID, CheckpointAvailable)
		newBytes[project] = c.Resources[0].NewBytes
	}
	if newBytes["alpha"] != 512<<10 || newBytes["beta"] != 512<<10 {
		t.Fatalf("new_bytes %v: each project must store the whole volume, whatever the other holds", newBytes)
	}
	a, b := repoOf(t, e.a, "alpha"), repoOf(t, e.a, "beta")
	if a.Config().ID == b.Config().ID || bytes.Equal(a.Config().IDKey, b.Config().IDKey) {
		t.Fatal("the projects' repositories share an ID or a chunk-ID key")
	}
	for project, r := range map[string]*dedup.Repository{"alpha": a, "beta": b} {
		cps, err := r.Checkpoints(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) != 1 || cps[0].Tags["cairn.project"] != project {
			t.Fatalf("repository of %s holds %d checkpoints (first tagged %v)", project, len(cps), cps[0].Tags)
		}
	}
	ps, err := e.a.repos.projects()
	if err != nil || !slices.Equal(ps, []string{"alpha", "beta"}) {
		t.Fatalf("projects with a repository: %v, %v", ps, err)
	}
	da, _ := e.a.repos.dir("alpha")
	db, _ := e.a.repos.dir("beta")
	if strings.HasPrefix(db, da) || strings.HasPrefix(da, db) {
		t.Fatalf("repository directories nest: %s, %s", da, db)
	}
}

// TestRepositoryConfigNeedsProject: a repository without {project_id}
// would be shared again; the config is refused.
func TestRepositoryConfigNeedsProject(t *testing.T) {
	for _, c := range []Config{
		{DataDir: t.TempDir(), Repository: "/srv/cairn/repo"},
		{DataDir: t.TempDir(), RepositoryPools: []string{"cairn"}, RepositoryNamespace: "shared"},
		{DataDir: t.TempDir(), DataShards: 0, ParityShards: 2},
	} {
		if err := c.Fill(); !errors.Is(err, ErrInvalid) {
			t.Errorf("config %+v: %v, want ErrInvalid", c, err)
		}
	}
}

// TestPasswordFileAsKeyFile: the appliance reads password_file as the
// CLI reads --key-file: one file opens the repository from both, and an
// empty one is refused.
func TestPasswordFileAsKeyFile(t *testing.T) {
	cfg := testConfig(t)
	cfg.PasswordFile = filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(cfg.PasswordFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, cfg, clk, true)
	id, _ := e.volume("a.img", 64<<10)
	p := e.plan("proj", id)
	cp, _ := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)
	e.stop()
	dir, _ := ProjectRepository(cfg.DataDir, "proj")
	r, err := dedup.Open(context.Background(), dir, dedup.Options{Password: []byte("s3cret"), NoIndex: true})
	if err != nil {
		t.Fatalf("the passphrase without its newline does not open the appliance's repository: %v", err)
	}
	if !r.Encrypted() {
		t.Error("password_file set, repository not encrypted")
	}
	_ = r.Close()
	if err := os.WriteFile(cfg.PasswordFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), cfg, Options{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty password_file: %v", err)
	}
}

// TestMigrateSharedRepository builds the layout an earlier release left
// (one repository, DATA_DIR/repo, holding every project's backups), checks
// that the appliance refuses it naming the migration, migrates, and
// restores each project's data from its own repository.
func TestMigrateSharedRepository(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	e := openEnv(t, cfg, clk, true)
	ids, data, cps := map[string]string{}, map[string][]byte{}, map[string]string{}
	for _, project := range []string{"alpha", "beta"} {
		ids[project], data[project] = e.volume(project+".img", 200<<10)
		p := e.plan(project, ids[project])
		cp, err := e.a.CreateCheckpoint(ctx, project, ProviderID, p.ID, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		e.waitCheckpoint(project, cp.ID, CheckpointAvailable)
		cps[project] = cp.ID
	}
	e.stop()

	// Move every backup into one shared repository and point the state
	// at it, as an earlier release had it.
	shared, err := dedup.Init(ctx, sharedRepoDir(cfg.DataDir), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := openState(cfg.DataDir, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	for project, cpID := range cps {
		dir, _ := ProjectRepository(cfg.DataDir, project)
		own, err := dedup.Open(ctx, dir, dedup.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var cp Checkpoint
		loadOne(t, st, "checkpoints", cpID, &cp)
		c, err := dedup.CopyCheckpoint(ctx, own, shared, cp.Resources[0].BackupID)
		if err != nil {
			t.Fatal(err)
		}
		cp.Resources[0].BackupID = c.ID
		if err := st.put("checkpoints", cpID, &cp); err != nil {
			t.Fatal(err)
		}
		_ = own.Close()
	}
	_ = shared.Close()
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "projects")); err != nil {
		t.Fatal(err)
	}

	if _, err := Open(ctx, cfg, Options{Log: slog.New(slog.DiscardHandler)}); !errors.Is(err, ErrSharedRepository) || !strings.Contains(err.Error(), "--migrate") {
		t.Fatalf("start on a shared repository: %v, want ErrSharedRepository naming --migrate", err)
	}
	rep, err := Migrate(ctx, cfg, Options{Log: slog.New(slog.DiscardHandler)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Copied != 2 || rep.Projects["alpha"] != 1 || rep.Projects["beta"] != 1 || rep.MovedTo == "" {
		t.Fatalf("migration report %+v", rep)
	}
	if _, err := Migrate(ctx, cfg, Options{}, nil); !errors.Is(err, dedup.ErrNoRepository) {
		t.Fatalf("second migration: %v, want nothing to migrate", err)
	}

	e2 := openEnv(t, cfg, clk, true)
	for project, cpID := range cps {
		r, err := e2.a.CreateRestore(ctx, project, ProviderID, cpID, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		r = waitRun(t, e2.a, project, "restore", r.ID)
		if r.Status != RestoreSuccess {
			t.Fatalf("restore of %s after migration: %+v", project, r)
		}
		for _, where := range r.Restored {
			got, err := os.ReadFile(where)
			if err != nil || !bytes.Equal(got, data[project]) {
				t.Fatalf("restore of %s after migration differs (%v)", project, err)
			}
		}
		cps, _ := repoOf(t, e2.a, project).Checkpoints(ctx)
		if len(cps) != 1 || cps[0].Tags["cairn.project"] != project {
			t.Fatalf("project %s's repository after migration: %d checkpoints", project, len(cps))
		}
	}
}

func loadOne(t *testing.T, st stateStore, kind, id string, v any) {
	t.Helper()
	found := false
	if err := st.loadAll(kind, func(got string, b []byte) error {
		if got == id {
			found = true
			return json.Unmarshal(b, v)
		}
		return nil
	}); err != nil || !found {
		t.Fatalf("load %s %s: found %v, %v", kind, id, found, err)
	}
}

// fill writes path until dir's file system has no byte left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for n := len(buf); n > 0; {
		if _, err := f.Write(buf[:n]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			n /= 2
		}
	}
}

// TestPruneOnFullDisk: with the data dir's file system full, a job can no
// longer open a project's repository (ErrNoSpace, not SIGBUS), but the
// daemon's prune still opens it, as freeing space, and frees the space of
// a deleted checkpoint; a job asking for the repository meanwhile waits
// for the prune's handle to close instead of writing through it. On the
// landed code the prune opened the repository as a job does and failed.
func TestPruneOnFullDisk(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	cfg.DataDir = testenv.SmallFS(t, "48m")
	e := openEnv(t, cfg, clk, true)
	id, _ := e.volume("vol.img", 8<<20)
	p := e.plan("alpha", id)
	cp, err := e.a.CreateCheckpoint(context.Background(), "alpha", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e.waitCheckpoint("alpha", cp.ID, CheckpointAvailable)
	if err := e.a.DeleteCheckpoint(context.Background(), "alpha", ProviderID, cp.ID); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.cfg.FileRoots[0], "vol.img")); err != nil {
		t.Fatal(err)
	}
	fill(t, filepath.Join(cfg.DataDir, "filler"))

	// Close the idle handle the protection left open, so the job opens
	// the repository afresh on the full disk.
	if err := e.a.repos.close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.a.repos.get(context.Background(), "alpha"); !errors.Is(err, dedup.ErrNoSpace) {
		t.Fatalf("a job opening the repository on a full disk: %v, want ErrNoSpace", err)
	}

	r, release, err := e.a.repos.acquire(context.Background(), "alpha", true)
	if err != nil {
		t.Fatalf("prune opening the repository on a full disk: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		_, rel, err := e.a.repos.get(context.Background(), "alpha")
		if err == nil {
			rel()
		}
		got <- err
	}()
	rep, err := r.Prune(context.Background(), dedup.PruneOptions{Grace: -1})
	if err != nil {
		t.Fatalf("prune on a full disk: %v", err)
	}
	if rep.BytesFreed <= 0 {
		t.Fatalf("prune freed %d bytes", rep.BytesFreed)
	}
	select {
	case err := <-got:
		t.Fatalf("a job got the prune's freeing handle (err %v)", err)
	default:
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("a job after the prune freed space: %v", err)
	}
}
