package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestApplianceRepositoryPerProject: two projects protect the same bytes
// through the daemon. Each pays for them in full (new_bytes does not tell
// either that the other holds them), and every tool pointed at the
// appliance's data directory opens one project's repository only: the
// checkpoint list, a FUSE mount and an NBD export show that project's
// backups and nothing of the other's.
func TestApplianceRepositoryPerProject(t *testing.T) {
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(vols, "same.img")
	writeRandomFile(t, src, 21, 3*mib)
	a := startAppliance(t, dir, nil)
	const A, B = "tenant-a", "tenant-b"
	cps := map[string]string{}
	for _, p := range []string{A, B} {
		cp := a.createCheckpoint(p, a.createFilePlan(p, "same", src))
		c := a.waitCheckpoint(p, cp)
		if c["status"] != "available" {
			t.Fatalf("checkpoint of %s: %v", p, c)
		}
		extra := c["extra_info"].(map[string]any)
		if extra["new_bytes"] != float64(3*mib) {
			t.Errorf("project %s: new_bytes %v for a %d-byte volume the other project holds too; want all of it",
				p, extra["new_bytes"], 3*mib)
		}
		cps[p] = cp
	}
	a.stop()

	// Without --project the data directory is refused, naming the flag.
	data := &env{t: t, repo: dir, scratch: t.TempDir()}
	r := data.run("checkpoints")
	if r.code != 2 || !strings.Contains(r.stderr, "--project") {
		t.Fatalf("checkpoints on an appliance data directory without --project: %s", r)
	}
	backups := map[string][]string{}
	for _, p := range []string{A, B} {
		e := &env{t: t, repo: dir, project: p, scratch: t.TempDir()}
		for _, c := range e.checkpoints() {
			backups[p] = append(backups[p], c.ID)
		}
		if len(backups[p]) != 1 {
			t.Fatalf("project %s's repository lists %d checkpoints, want its one", p, len(backups[p]))
		}
	}
	if backups[A][0] == backups[B][0] {
		t.Fatal("both projects list the same repository checkpoint")
	}
	if r := (&env{t: t, repo: dir, project: "nobody", scratch: t.TempDir()}).run("checkpoints"); r.code == 0 {
		t.Fatalf("a project without a repository opened one: %s", r)
	}

	t.Run("mount", func(t *testing.T) {
		fuseRequire(t)
		e := &env{t: t, repo: dir, project: A, scratch: t.TempDir()}
		s := fuseStart(t, e)
		ents, err := os.ReadDir(filepath.Join(s.dir, "by-id"))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range ents {
			ids = append(ids, d.Name())
		}
		if !slices.Equal(ids, backups[A]) {
			t.Fatalf("mount of project %s shows %v, want only %v", A, ids, backups[A])
		}
		if got := fileHash(t, filepath.Join(s.dir, "by-id", backups[A][0], "disk.raw")); got != fileHash(t, src) {
			t.Fatal("the mounted disk differs from its source")
		}
		s.stop(t)
	})
	t.Run("nbd", func(t *testing.T) {
		requireNBDTool(t, "nbdinfo", "libnbd-bin")
		e := &env{t: t, repo: dir, project: B, scratch: t.TempDir()}
		s := e.startNBD("")
		out := mustNBDTool(t, "nbdinfo", "--list", "nbd://"+s.addr)
		if !strings.Contains(out, backups[B][0]) || strings.Contains(out, backups[A][0]) {
			t.Fatalf("NBD export list of project %s:\n%s\nwant %s and not %s", B, out, backups[B][0], backups[A][0])
		}
		if r, err := nbdTool(t, "nbdinfo", "--size", s.uri(backups[A][0])); err == nil {
			t.Fatalf("project %s's server exports %s's checkpoint: %s", B, A, r)
		}
	})
}
