//go:build ceph

package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rbd"
)

const fastDiffFeatures = "layering,exclusive-lock,object-map,fast-diff"

// TestRBDIncremental: a full backup, known changes, an incremental that
// reads only the changed objects, one base snapshot at a time, and
// byte-exact restores of both, with and without fast-diff.
func TestRBDIncremental(t *testing.T) {
	for _, tc := range []struct{ name, features, diff string }{
		{"fast-diff", fastDiffFeatures, "whole-object (fast-diff)"},
		{"exact", "layering,exclusive-lock", "exact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := requireCeph(t)
			e := newRepo(t, repoOpts{init: []string{}}) // 4 MiB blocks, like the objects
			name, spec := c.newImage(256*mib, tc.features)
			c.rbdCLI("bench", "--io-type", "write", "--io-size", "4K", "--io-pattern", "rand", "--io-total", "8M", c.pool+"/"+name)
			c.write(name, 64*mib, randomBytes(1, int(3*mib)))

			cp1, _ := e.backupRBD(nil, spec)
			if cp1.Tags["rbd.mode"] != "full" || cp1.Tags["rbd.snap_managed"] != "true" {
				t.Fatalf("first backup tags %v, want a full backup of a managed snapshot", cp1.Tags)
			}
			if got := c.cairnSnaps(name); !slices.Equal(got, []string{cp1.Tags["rbd.snap"]}) {
				t.Fatalf("cairn snapshots after the first backup: %v, want [%s]", got, cp1.Tags["rbd.snap"])
			}
			h1 := c.exportHash(name + "@" + cp1.Tags["rbd.snap"])

			// Known changes in 5 objects (2, 25, 30, 49, 50): small writes,
			// one straddling two objects, and a discard of a whole object.
			c.write(name, 10*mib+100, randomBytes(2, 4096))
			c.write(name, 100*mib, randomBytes(3, int(64*kib)))
			c.write(name, 199*mib+512*kib, randomBytes(4, int(mib)))
			c.discard(name, 120*mib, 4*mib)
			const changedObjects = 5

			cp2, _ := e.backupRBD(nil, spec)
			t.Logf("incremental: read %d bytes, new %d, tags %v", cp2.ReadBytes, cp2.NewBytes, cp2.Tags)
			if cp2.Tags["rbd.mode"] != "incremental" || cp2.Parent != cp1.ID || cp2.Tags["rbd.base_snap"] != cp1.Tags["rbd.snap"] {
				t.Fatalf("second backup: parent %s, tags %v; want an incremental from %s", cp2.Parent, cp2.Tags, cp1.ID)
			}
			if cp2.Tags["rbd.diff"] != tc.diff {
				t.Errorf("rbd.diff = %q, want %q", cp2.Tags["rbd.diff"], tc.diff)
			}
			if cp2.ReadBytes <= 0 || cp2.ReadBytes > changedObjects*4*mib || cp2.ReadBytes > cp2.Size/10 {
				t.Errorf("incremental read %d bytes, want (0, %d] (%d changed 4 MiB objects of a %d-byte image)",
					cp2.ReadBytes, changedObjects*4*mib, changedObjects, cp2.Size)
			}
			if cp2.Tags["rbd.verify_sampled"] == "" || strings.HasPrefix(cp2.Tags["rbd.verify_sampled"], "0 ") {
				t.Errorf("rbd.verify_sampled = %q, want at least one sampled block", cp2.Tags["rbd.verify_sampled"])
			}
			// Sub-block deltas (docs/format.md §9.3): the changed blocks are
			// stored as the pages that changed (about 1.1 MiB here), not as
			// four whole 4 MiB blocks.
			if cp2.NewBytes <= 0 || cp2.NewBytes > 2*mib {
				t.Errorf("incremental stored %d new bytes, want (0, %d]: the changed pages, not whole blocks", cp2.NewBytes, 2*mib)
			}
			if cp2.HoleBlocks <= cp1.HoleBlocks {
				t.Errorf("hole blocks %d after discarding an object, were %d", cp2.HoleBlocks, cp1.HoleBlocks)
			}
			if got := c.cairnSnaps(name); !slices.Equal(got, []string{cp2.Tags["rbd.snap"]}) {
				t.Fatalf("cairn snapshots after the incremental: %v, want only [%s]", got, cp2.Tags["rbd.snap"])
			}
			h2 := c.exportHash(name + "@" + cp2.Tags["rbd.snap"])
			if h1 == h2 {
				t.Fatal("test bug: the changes did not change the image")
			}

			cp3, _ := e.backupRBD(nil, spec)
			if cp3.ReadBytes != 0 || cp3.Tags["rbd.mode"] != "incremental" {
				t.Errorf("backup without changes read %d bytes, mode %q; want 0, incremental", cp3.ReadBytes, cp3.Tags["rbd.mode"])
			}
			e.checkRestore(cp1.ID, h1, "full RBD backup")
			e.checkRestore(cp2.ID, h2, "incremental RBD backup")
			e.checkRestore(cp3.ID, h2, "RBD backup without changes")
			e.must("verify", "--against-source", cp3.ID)
		})
	}
}

// TestRBDBaseSnapshotDeleted: an operator removed the base snapshot; the
// next backup reads the whole image, says so, records it, and is exact.
func TestRBDBaseSnapshotDeleted(t *testing.T) {
	c := requireCeph(t)
	e := newRepo(t, repoOpts{})
	name, spec := c.newImage(64*mib, fastDiffFeatures)
	c.write(name, 0, randomBytes(5, int(2*mib)))
	c.write(name, 40*mib, randomBytes(6, int(2*mib)))
	cp1, _ := e.backupRBD(nil, spec)

	c.write(name, 5*mib, randomBytes(7, 4096))
	c.rbdCLI("snap", "rm", c.pool+"/"+name+"@"+cp1.Tags["rbd.snap"])
	cp2, r := e.backupRBD(nil, spec)
	if cp2.Tags["rbd.fallback"] != "base snapshot missing" || cp2.Tags["rbd.mode"] != "full" {
		t.Errorf("tags %v, want rbd.fallback=base snapshot missing and a full read", cp2.Tags)
	}
	if !strings.Contains(r.stderr, "gone") {
		t.Errorf("stderr does not say the base snapshot is gone: %q", r.stderr)
	}
	if cp2.Parent != cp1.ID || cp2.NewBytes > 2*64*kib {
		t.Errorf("parent %s, new bytes %d: want unchanged blocks deduplicated against %s", cp2.Parent, cp2.NewBytes, cp1.ID)
	}
	e.checkRestore(cp2.ID, c.exportHash(name+"@"+cp2.Tags["rbd.snap"]), "backup after the base snapshot was deleted")
	if got := c.cairnSnaps(name); !slices.Equal(got, []string{cp2.Tags["rbd.snap"]}) {
		t.Errorf("cairn snapshots %v, want only %s", got, cp2.Tags["rbd.snap"])
	}
}

// TestRBDCorruptHint simulates a Ceph diff bug (a test hook drops one
// changed extent): the sampling check refuses the incremental, and a
// checkpoint made without sampling is caught by verify --against-source
// and never used as a base.
func TestRBDCorruptHint(t *testing.T) {
	c := requireCeph(t)
	e := newRepo(t, repoOpts{})
	name, spec := c.newImage(64*mib, fastDiffFeatures)
	c.write(name, 0, randomBytes(8, int(4*mib)))
	c.write(name, 20*mib, randomBytes(9, int(8*mib)))
	cp1, _ := e.backupRBD(nil, spec)

	// Changes in objects 0 and 7, which a diff reports as two extents.
	c.write(name, mib, randomBytes(10, 4096))
	c.write(name, 30*mib, randomBytes(11, 4096))
	hook := []string{"CAIRN_TEST_DROP_DIFF_EXTENT=1"}
	r := e.runEnv(hook, "backup", "--source", spec, "--verify-sample", "1.0")
	if r.code == 0 || !strings.Contains(r.stderr, "RBD diff missed changes at offset") || !strings.Contains(r.stderr, "--full") {
		t.Fatalf("backup with a corrupted diff and full sampling, want a loud failure:\n%s", r)
	}
	if n := len(e.checkpoints()); n != 1 {
		t.Fatalf("%d checkpoints after the refused incremental, want 1", n)
	}
	if got := c.cairnSnaps(name); !slices.Equal(got, []string{cp1.Tags["rbd.snap"]}) {
		t.Errorf("cairn snapshots after the refused incremental: %v, want only the base", got)
	}

	bad, _ := e.backupRBD(hook, spec, "--verify-sample", "0")
	if e.restoreHash(bad.ID) == c.exportHash(name+"@"+bad.Tags["rbd.snap"]) {
		t.Fatal("test bug: the hook did not make a wrong checkpoint")
	}
	r = e.run("--json", "verify", "--against-source", bad.ID)
	var res struct {
		OK         bool `json:"ok"`
		Mismatched int  `json:"mismatched_blocks"`
		Marked     bool `json:"marked_bad_base"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code == 0 || res.OK || res.Mismatched == 0 || !res.Marked {
		t.Fatalf("verify --against-source of the wrong checkpoint: %+v, %v\n%s", res, err, r)
	}

	next, r := e.backupRBD(nil, spec)
	if next.Parent == bad.ID || next.Tags["rbd.mode"] != "full" || !strings.Contains(next.Tags["rbd.full_reason"], "failed verification") {
		t.Errorf("backup after a failed verification: parent %s, tags %v; want a full read not based on %s", next.Parent, next.Tags, bad.ID)
	}
	if !strings.Contains(r.stderr, "failed verification") {
		t.Errorf("stderr does not say why the whole image is read: %q", r.stderr)
	}
	e.checkRestore(next.ID, c.exportHash(name+"@"+next.Tags["rbd.snap"]), "backup after a bad base")
	e.must("verify", "--against-source", next.ID)
}

// TestRBDNamedSnapshots backs up two existing snapshots, diffing the second
// against the first with --base-snap, and leaves the user's snapshots alone.
func TestRBDNamedSnapshots(t *testing.T) {
	c := requireCeph(t)
	e := newRepo(t, repoOpts{})
	name, spec := c.newImage(64*mib, fastDiffFeatures)
	c.write(name, 0, randomBytes(12, int(8*mib)))
	c.rbdCLI("snap", "create", c.pool+"/"+name+"@s1")
	c.write(name, 30*mib, randomBytes(13, 4096))
	c.rbdCLI("snap", "create", c.pool+"/"+name+"@s2")

	cp1, _ := e.backupRBD(nil, spec+"@s1")
	if cp1.Tags["rbd.snap"] != "s1" || cp1.Tags["rbd.snap_managed"] != "false" || cp1.Source != spec {
		t.Fatalf("backup of @s1: source %s, tags %v", cp1.Source, cp1.Tags)
	}
	cp2, _ := e.backupRBD(nil, spec+"@s2", "--base-snap", "s1")
	if cp2.Parent != cp1.ID || cp2.Tags["rbd.base_snap"] != "s1" || cp2.ReadBytes > 4*mib {
		t.Errorf("backup of @s2 against s1: parent %s, read %d, tags %v", cp2.Parent, cp2.ReadBytes, cp2.Tags)
	}
	e.checkRestore(cp1.ID, c.exportHash(name+"@s1"), "snapshot s1")
	e.checkRestore(cp2.ID, c.exportHash(name+"@s2"), "snapshot s2")
	if got := c.snaps(name); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("snapshots %v, want the user's [s1 s2] untouched", got)
	}
	cp3, _ := e.backupRBD(nil, spec+"@s2", "--base-snap", "nosuch")
	if cp3.Tags["rbd.mode"] != "full" || !strings.Contains(cp3.Tags["rbd.full_reason"], "no checkpoint of snapshot nosuch") {
		t.Errorf("--base-snap without a checkpoint: tags %v, want a full read", cp3.Tags)
	}
}

// TestRBDKilledBackup kills a backup after it took its snapshot: at most
// one extra cairn snapshot, no visible checkpoint, and the next backup
// cleans up.
func TestRBDKilledBackup(t *testing.T) {
	c := requireCeph(t)
	e := newRepo(t, repoOpts{})
	name, spec := c.newImage(256*mib, fastDiffFeatures)
	c.write(name, 0, randomBytes(14, int(16*mib)))
	cp1, _ := e.backupRBD(nil, spec)
	c.write(name, 0, randomBytes(15, int(192*mib)))

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := e.command(ctx, "backup", "--source", spec, "--read-workers", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && !killed; {
		select {
		case err := <-exited:
			t.Logf("backup ended before its snapshot was seen: %v", err)
			exited <- err
			deadline = time.Time{}
		default:
		}
		if len(c.cairnSnapsFast(name)) >= 2 {
			// Past the snapshot's creation, into the reads: a kill inside
			// snapshot creation leaves librbd's exclusive lock to a dead
			// client, which the next backup waits out (30 s).
			time.Sleep(300 * time.Millisecond)
			_ = cmd.Process.Kill()
			killed = true
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := <-exited; err == nil {
		killed = false
		t.Log("the backup finished before it was killed")
	}
	snaps := c.cairnSnaps(name)
	if len(snaps) > 2 {
		t.Fatalf("cairn snapshots after a killed backup: %v, want at most the base and one more", snaps)
	}
	if n := len(e.checkpoints()); killed && n != 1 {
		t.Errorf("%d checkpoints after the kill, want 1 (%s)", n, cp1.ID)
	}
	cp3, _ := e.backupRBD(nil, spec)
	if got := c.cairnSnaps(name); !slices.Equal(got, []string{cp3.Tags["rbd.snap"]}) {
		t.Errorf("cairn snapshots after the next backup: %v, want only %s", got, cp3.Tags["rbd.snap"])
	}
	e.checkRestore(cp3.ID, c.exportHash(name+"@"+cp3.Tags["rbd.snap"]), "backup after a killed one")
}

// cairnSnapsFast lists cairn-* snapshots through librbd: polled every few
// milliseconds, where the rbd CLI would take a tenth of a second.
func (c *cephT) cairnSnapsFast(name string) []string {
	img, err := rbd.OpenImageReadOnly(c.io, name, rbd.NoSnapshot)
	if err != nil {
		return nil
	}
	defer img.Close()
	snaps, _ := img.GetSnapshotNames()
	var out []string
	for _, s := range snaps {
		if strings.HasPrefix(s.Name, "cairn-") {
			out = append(out, s.Name)
		}
	}
	return out
}
