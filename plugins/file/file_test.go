package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"cairn/dedup"
	"cairn/plugins"
)

func setup(t *testing.T) (*Plugin, *dedup.Repository, string, string) {
	t.Helper()
	dir := t.TempDir()
	root, rdir := filepath.Join(dir, "volumes"), filepath.Join(dir, "restores")
	for _, d := range []string{root, rdir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New([]string{root}, rdir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := dedup.Init(context.Background(), filepath.Join(dir, "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = repo.Close() })
	return p, repo, root, rdir
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	p, repo, root, rdir := setup(t)
	src := filepath.Join(root, "disk.img")
	data := make([]byte, 1<<20+123)
	_, _ = rand.Read(data[:300<<10]) // the rest stays zero (a hole candidate)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Not protectable: subdirectories and leftover partial restores.
	_ = os.Mkdir(filepath.Join(root, "sub"), 0o700)
	_ = os.WriteFile(PartialPath(filepath.Join(root, "x")), []byte("p"), 0o600)

	insts, err := p.Instances(ctx, "proj")
	if err != nil || len(insts) != 1 {
		t.Fatalf("instances %v (%v)", insts, err)
	}
	res := insts[0]
	if res.ID != InstanceID(src) || res.Type != Type || res.Name != src {
		t.Fatalf("instance %+v", res)
	}
	if _, err := p.Instance(ctx, "proj", "00000000-0000-0000-0000-000000000000"); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("missing instance: %v", err)
	}

	tags := map[string]string{"cairn.checkpoint": "cp1"}
	b, err := p.Protect(ctx, repo, plugins.ProtectRequest{Resource: res, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	if b.Size != int64(len(data)) || b.ID == "" {
		t.Fatalf("backup %+v", b)
	}
	cp, _, err := repo.LoadCheckpoint(ctx, b.ID)
	if err != nil || cp.Tags["cairn.checkpoint"] != "cp1" {
		t.Fatalf("tags not recorded: %v %v", cp, err)
	}
	if err := p.Verify(ctx, repo, b.ID); err != nil {
		t.Fatal(err)
	}

	// Restore to the default location, to an explicit path, and refusals.
	where, err := p.Restore(ctx, repo, plugins.RestoreRequest{Resource: res, BackupID: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(where) != rdir {
		t.Fatalf("default restore went to %s", where)
	}
	target := filepath.Join(rdir, "out.img")
	got, err := p.Restore(ctx, repo, plugins.RestoreRequest{Resource: res, BackupID: b.ID, Parameters: map[string]any{"restore_path": target}})
	if err != nil || got != target {
		t.Fatalf("restore: %s %v", got, err)
	}
	for _, f := range []string{where, target} {
		out, err := os.ReadFile(f)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("%s differs from the source (%v)", f, err)
		}
		if _, err := os.Stat(PartialPath(f)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("partial file left: %v", err)
		}
	}
	for name, params := range map[string]map[string]any{
		"exists":      {"restore_path": target},
		"outside":     {"restore_path": "/etc/cairn-test"},
		"traversal":   {"restore_path": filepath.Join(rdir, "..", "escape.img")},
		"relative":    {"restore_path": "out2.img"},
		"not string":  {"restore_path": 5},
		"root itself": {"restore_path": rdir},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := p.Restore(ctx, repo, plugins.RestoreRequest{Resource: res, BackupID: b.ID, Parameters: params})
			if !errors.Is(err, plugins.ErrInvalidParameter) {
				t.Fatalf("err %v, want ErrInvalidParameter", err)
			}
		})
	}

	// Delete is idempotent; verify and restore of a deleted backup fail.
	if err := p.Delete(ctx, repo, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, repo, b.ID); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if err := p.Verify(ctx, repo, b.ID); err == nil {
		t.Fatal("verify of a deleted backup succeeded")
	}
	if _, err := p.Restore(ctx, repo, plugins.RestoreRequest{Resource: res, BackupID: b.ID, Target: filepath.Join(rdir, "gone.img")}); err == nil {
		t.Fatal("restore of a deleted backup succeeded")
	}
	if _, err := os.Stat(PartialPath(filepath.Join(rdir, "gone.img"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("failed restore left a partial file")
	}
}

func TestProtectCancelled(t *testing.T) {
	p, repo, root, _ := setup(t)
	src := filepath.Join(root, "disk.img")
	_ = os.WriteFile(src, make([]byte, 1<<20), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Protect(ctx, repo, plugins.ProtectRequest{Resource: plugins.Resource{ID: InstanceID(src), Type: Type}}); err == nil {
		t.Fatal("cancelled protect succeeded")
	}
	cps, _ := repo.Checkpoints(context.Background())
	if len(cps) != 0 {
		t.Fatalf("cancelled protect left %d checkpoints", len(cps))
	}
}

func TestRecover(t *testing.T) {
	p, _, root, rdir := setup(t)
	var leftovers []string
	for _, d := range []string{root, rdir} {
		f := PartialPath(filepath.Join(d, "x.img"))
		_ = os.WriteFile(f, []byte("half"), 0o600)
		leftovers = append(leftovers, f)
	}
	keep := filepath.Join(root, "keep.img")
	_ = os.WriteFile(keep, []byte("k"), 0o600)
	if err := p.Recover(context.Background(), "proj", nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range leftovers {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s survived", f)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatal("Recover removed a real file")
	}
}

func TestRegistry(t *testing.T) {
	p, _, _, _ := setup(t)
	if _, err := plugins.NewRegistry(p, p); err == nil {
		t.Fatal("duplicate type registered")
	}
	r, err := plugins.NewRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("OS::Nope"); !errors.Is(err, plugins.ErrUnknownType) {
		t.Fatal(err)
	}
	if got, _ := r.Get(Type); got != p {
		t.Fatal("Get returned another plugin")
	}
	if ts := r.Types(); len(ts) != 1 || ts[0] != Type {
		t.Fatal(ts)
	}
}

// TestProjectDirectories: with {project_id} in the configured directories,
// one project neither sees nor protects nor restores into another's files.
func TestProjectDirectories(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := New([]string{filepath.Join(dir, "volumes", plugins.ProjectPlaceholder)}, filepath.Join(dir, "restores", plugins.ProjectPlaceholder), Options{})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := dedup.Init(ctx, filepath.Join(dir, "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = repo.Close() })
	aFile := filepath.Join(dir, "volumes", "projA", "a.img")
	if err := os.MkdirAll(filepath.Dir(aFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aFile, bytes.Repeat([]byte("A"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	aID := InstanceID(aFile)

	if got, err := p.Instances(ctx, "projA"); err != nil || len(got) != 1 || got[0].ID != aID {
		t.Fatalf("projA instances = %v, %v; want only %s", got, err, aFile)
	}
	if got, err := p.Instances(ctx, "projB"); err != nil || len(got) != 0 {
		t.Fatalf("projB instances = %v, %v; want none", got, err)
	}
	if _, err := p.Instance(ctx, "projB", aID); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("projB instance of projA's file: err = %v, want ErrInstanceNotFound", err)
	}
	res := plugins.Resource{ID: aID, Type: Type, Name: aFile}
	if _, err := p.Protect(ctx, repo, plugins.ProtectRequest{Project: "projB", Resource: res}); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("projB protecting projA's file: err = %v, want ErrInstanceNotFound", err)
	}
	b, err := p.Protect(ctx, repo, plugins.ProtectRequest{Project: "projA", Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(dir, "restores", "projA", "x.img")
	if _, err := p.Restore(ctx, repo, plugins.RestoreRequest{Project: "projB", Resource: res, BackupID: b.ID, Target: into}); !errors.Is(err, plugins.ErrInvalidParameter) {
		t.Fatalf("projB restoring into projA's directory: err = %v, want ErrInvalidParameter", err)
	}
	where, err := p.Restore(ctx, repo, plugins.RestoreRequest{Project: "projA", Resource: res, BackupID: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(where) != filepath.Join(dir, "restores", "projA") {
		t.Fatalf("default restore went to %s, want projA's restore directory", where)
	}
	for _, bad := range []string{"", "../projA", "a/b", "p.q"} {
		if _, err := p.Instances(ctx, bad); !errors.Is(err, plugins.ErrInvalidParameter) {
			t.Errorf("project %q: err = %v, want ErrInvalidParameter", bad, err)
		}
	}
}
