//go:build ceph

package rbd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gorbd "github.com/ceph/go-ceph/rbd"

	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/internal/cephtest"
	"cairn/plugins"
)

const (
	mib      = 1 << 20
	fastDiff = gorbd.FeatureLayering | gorbd.FeatureExclusiveLock | gorbd.FeatureObjectMap | gorbd.FeatureFastDiff
)

// fixture is a plugin over the test cluster and a fresh repository.
type fixture struct {
	c    *cephtest.Cluster
	p    *Plugin
	repo *dedup.Repository
}

func newFixture(t *testing.T, pools ...string) *fixture {
	t.Helper()
	c := cephtest.Connect(t)
	p, err := New(Config{Pools: pools, Conn: cephrbd.ConnOptions{Conf: c.Conf}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	repo, err := dedup.Init(context.Background(), filepath.Join(t.TempDir(), "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = repo.Close() })
	return &fixture{c: c, p: p, repo: repo}
}

// protect runs Protect, failing the test on an error, and returns the
// backup's repository checkpoint.
func (f *fixture) protect(t *testing.T, req plugins.ProtectRequest) *dedup.Checkpoint {
	t.Helper()
	b, err := f.p.Protect(context.Background(), f.repo, req)
	if err != nil {
		t.Fatalf("protect %s: %v", req.Resource.Name, err)
	}
	cp, _, err := f.repo.LoadCheckpoint(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// instance finds the instance called name among project's.
func (f *fixture) instance(t *testing.T, project, name string) plugins.Resource {
	t.Helper()
	all, err := f.p.Instances(context.Background(), project)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("project %s has no instance %s: %v", project, name, all)
	return plugins.Resource{}
}

func (f *fixture) cairnSnaps(pool, ns, image string) []string {
	var out []string
	for _, s := range f.c.Snaps(pool, ns, image) {
		if strings.HasPrefix(s, cephrbd.SnapPrefix) {
			out = append(out, s)
		}
	}
	return out
}

// TestProtectIncrementalRestore: a full protection, an incremental one
// against Previous that reads only the changed object, byte-exact
// restores of both to new images, refusals, verify and idempotent deletes
// that take the base snapshot along.
func TestProtectIncrementalRestore(t *testing.T) {
	ctx := context.Background()
	pool := cephtest.Pool()
	f := newFixture(t, pool)
	img := cephtest.Unique("plug-")
	const size = 64 * mib
	f.c.CreateImage(pool, "", img, size, fastDiff)
	f.c.Write(pool, "", img, 3*mib, randomData(1, 6*mib))
	f.c.Write(pool, "", img, 50*mib+7, randomData(2, 100))

	res := f.instance(t, "proj", pool+"/"+img)
	if res.Type != Type || res.ExtraInfo["size"] != int64(size) || res.ExtraInfo["pool"] != pool || res.ExtraInfo["image"] != img {
		t.Fatalf("instance %+v", res)
	}
	if got, err := f.p.Instance(ctx, "proj", res.ID); err != nil || got.Name != res.Name {
		t.Fatalf("Instance(%s) = %+v, %v", res.ID, got, err)
	}
	if _, err := f.p.Instance(ctx, "proj", "00000000-0000-5000-8000-000000000000"); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("unknown instance: %v", err)
	}

	tags := map[string]string{"cairn.checkpoint": "cp1", "cairn.project": "proj"}
	b1, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: "proj", Resource: res, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	cp1, _, err := f.repo.LoadCheckpoint(ctx, b1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b1.Size != size || cp1.Tags["cairn.checkpoint"] != "cp1" || cp1.Tags[cephrbd.TagMode] != "full" {
		t.Fatalf("first backup: size %d, tags %v", b1.Size, cp1.Tags)
	}
	if got := f.cairnSnaps(pool, "", img); !slices.Equal(got, []string{cp1.Tags[cephrbd.TagSnap]}) {
		t.Fatalf("cairn snapshots after the first backup: %v, want [%s]", got, cp1.Tags[cephrbd.TagSnap])
	}
	want1 := f.c.Read(pool, "", img, cp1.Tags[cephrbd.TagSnap])

	// One 4 KiB write: the incremental reads one object at most.
	f.c.Write(pool, "", img, 30*mib, randomData(3, 4096))
	tags2 := map[string]string{"cairn.checkpoint": "cp2"}
	b2, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: "proj", Resource: res, Tags: tags2, Previous: b1.ID})
	if err != nil {
		t.Fatal(err)
	}
	cp2, _, err := f.repo.LoadCheckpoint(ctx, b2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cp2.Tags[cephrbd.TagMode] != "incremental" || cp2.Parent != b1.ID || cp2.Tags["cairn.checkpoint"] != "cp2" {
		t.Fatalf("second backup: parent %s, tags %v; want an incremental from %s", cp2.Parent, cp2.Tags, b1.ID)
	}
	if b2.Stats.ReadBytes <= 0 || b2.Stats.ReadBytes > 4*mib {
		t.Errorf("incremental read %d bytes, want (0, 4 MiB]", b2.Stats.ReadBytes)
	}
	snap2 := cp2.Tags[cephrbd.TagSnap]
	if got := f.cairnSnaps(pool, "", img); !slices.Equal(got, []string{snap2}) {
		t.Fatalf("cairn snapshots after the incremental: %v, want only [%s]", got, snap2)
	}
	want2 := f.c.Read(pool, "", img, snap2)
	if bytes.Equal(want1, want2) {
		t.Fatal("test bug: the write did not change the image")
	}
	if err := f.p.Verify(ctx, f.repo, b2.ID); err != nil {
		t.Fatal(err)
	}

	// Restores: a named new image, the default name, and refusals.
	out1 := img + "-r1"
	f.c.Cleanup(pool, "", out1)
	where, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: "proj", Resource: res, BackupID: b1.ID,
		Parameters: map[string]any{"restore_name": out1}})
	if err != nil || where != "rbd:"+pool+"/"+out1 {
		t.Fatalf("restore: %q, %v", where, err)
	}
	if !bytes.Equal(f.c.Read(pool, "", out1, ""), want1) {
		t.Fatal("restore of the full backup differs from its snapshot")
	}
	def := img + "-restore-" + b2.ID[:12]
	f.c.Cleanup(pool, "", def)
	where, err = f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: "proj", Resource: res, BackupID: b2.ID})
	if err != nil || where != "rbd:"+pool+"/"+def {
		t.Fatalf("default restore: %q, %v", where, err)
	}
	if !bytes.Equal(f.c.Read(pool, "", def, ""), want2) {
		t.Fatal("restore of the incremental differs from its snapshot")
	}
	for name, params := range map[string]map[string]any{
		"existing image":   {"restore_name": out1},
		"the source":       {"restore_name": img},
		"another pool":     {"restore_name": "no-such-pool/x"},
		"bad name":         {"restore_name": "a@b"},
		"partial name":     {"restore_name": partialName(f.repo.Config().ID, "x")},
		"not a string":     {"restore_name": 7},
		"too many slashes": {"restore_name": "a/b/c/d"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: "proj", Resource: res, BackupID: b1.ID, Parameters: params})
			if !errors.Is(err, plugins.ErrInvalidParameter) {
				t.Fatalf("err %v, want ErrInvalidParameter", err)
			}
		})
	}
	if _, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: "proj", Resource: res, BackupID: b1.ID, Target: "/tmp/x.img"}); !errors.Is(err, plugins.ErrInvalidParameter) {
		t.Fatalf("a file path as the target: %v", err)
	}
	for _, n := range f.c.Images(pool, "") {
		if isPartialName(n) {
			t.Errorf("partial image %s left behind", n)
		}
	}

	// Deletes are idempotent; deleting the newest backup takes its base
	// snapshot along, and the next protection falls back to a whole read.
	for _, id := range []string{b1.ID, b1.ID, b2.ID, b2.ID} {
		if err := f.p.Delete(ctx, f.repo, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if got := f.cairnSnaps(pool, "", img); len(got) != 0 {
		t.Errorf("cairn snapshots after deleting every backup: %v", got)
	}
	if cps, _ := f.repo.Checkpoints(ctx); len(cps) != 0 {
		t.Errorf("%d checkpoints left after the deletes", len(cps))
	}
	cp3 := f.protect(t, plugins.ProtectRequest{Project: "proj", Resource: res, Previous: b2.ID})
	if cp3.Tags[cephrbd.TagMode] != "full" || !strings.Contains(cp3.Tags[cephrbd.TagFullReason], "gone") {
		t.Errorf("protect with a deleted Previous: tags %v, want a whole read saying why", cp3.Tags)
	}
}

// TestProjectScoping: with {project_id} in a pool and a namespace, a
// project sees, protects and restores into only its own.
func TestProjectScoping(t *testing.T) {
	ctx := context.Background()
	pool := cephtest.Pool()
	f := newFixture(t, "cairnt-"+plugins.ProjectPlaceholder, pool+"/"+plugins.ProjectPlaceholder)
	projA, projB := cephtest.Unique("pa"), cephtest.Unique("pb")
	f.c.CreatePool("cairnt-" + projA)
	f.c.CreateNamespace(pool, projA)
	f.c.CreateImage("cairnt-"+projA, "", "in-pool", 8*mib, fastDiff)
	f.c.CreateImage(pool, projA, "in-ns", 8*mib, fastDiff)
	f.c.Write(pool, projA, "in-ns", 0, randomData(4, 3*mib))

	got, err := f.p.Instances(ctx, projA)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	if want := []string{"cairnt-" + projA + "/in-pool", pool + "/" + projA + "/in-ns"}; !slices.Equal(names, want) {
		t.Fatalf("project A's instances %v, want %v", names, want)
	}
	if got, err := f.p.Instances(ctx, projB); err != nil || len(got) != 0 {
		t.Fatalf("project B's instances %v, %v; want none", got, err)
	}
	res := f.instance(t, projA, pool+"/"+projA+"/in-ns")
	if _, err := f.p.Instance(ctx, projB, res.ID); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("B's Instance of A's image: %v", err)
	}
	if _, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: projB, Resource: res}); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("B protecting A's image: %v", err)
	}
	b, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: projA, Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"cairnt-" + projA + "/stolen", pool + "/" + projA + "/stolen", pool + "/stolen", "stolen"} {
		_, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: projB, Resource: res, BackupID: b.ID,
			Parameters: map[string]any{"restore_name": target}})
		if !errors.Is(err, plugins.ErrInvalidParameter) {
			t.Errorf("B restoring to %s: %v, want ErrInvalidParameter", target, err)
		}
	}
	// A restores beside the original, inside its namespace.
	where, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: projA, Resource: res, BackupID: b.ID,
		Parameters: map[string]any{"restore_name": "copy"}})
	if err != nil || where != "rbd:"+pool+"/"+projA+"/copy" {
		t.Fatalf("A's restore: %q, %v", where, err)
	}
	if !bytes.Equal(f.c.Read(pool, projA, "copy", ""), f.c.Read(pool, projA, "in-ns", "")) {
		t.Error("restored copy differs from the image")
	}
	for _, bad := range []string{"", "../x", "a/b", "p.q"} {
		if _, err := f.p.Instances(ctx, bad); !errors.Is(err, plugins.ErrInvalidParameter) {
			t.Errorf("project %q: err = %v, want ErrInvalidParameter", bad, err)
		}
	}
}

// TestRenamedImage: an instance keeps its ID across a rename and is still
// found by its old resource.
func TestRenamedImage(t *testing.T) {
	ctx := context.Background()
	pool := cephtest.Pool()
	f := newFixture(t, pool)
	img := cephtest.Unique("plug-")
	f.c.CreateImage(pool, "", img, 4*mib, fastDiff)
	f.c.Cleanup(pool, "", img+"-new")
	res := f.instance(t, "proj", pool+"/"+img)
	cl, err := f.p.cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.RenameImage(ctx, cephrbd.Spec{Pool: pool, Image: img}, img+"-new"); err != nil {
		t.Fatal(err)
	}
	got, err := f.p.Instance(ctx, "proj", res.ID)
	if err != nil || got.Name != pool+"/"+img+"-new" {
		t.Fatalf("renamed instance: %+v, %v", got, err)
	}
	if _, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: "proj", Resource: res}); err != nil {
		t.Fatalf("protect under the old name: %v", err)
	}
}

// TestProtectCancelled: a cancelled protection commits nothing and leaves
// no snapshot.
func TestProtectCancelled(t *testing.T) {
	pool := cephtest.Pool()
	f := newFixture(t, pool)
	img := cephtest.Unique("plug-")
	f.c.CreateImage(pool, "", img, 64*mib, fastDiff)
	f.c.Write(pool, "", img, 0, randomData(5, 32*mib))
	res := f.instance(t, "proj", pool+"/"+img)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: "proj", Resource: res}); err == nil {
		t.Skip("the protection finished within 30 ms")
	}
	if cps, _ := f.repo.Checkpoints(context.Background()); len(cps) != 0 {
		t.Errorf("cancelled protect left %d checkpoints", len(cps))
	}
	if got := f.cairnSnaps(pool, "", img); len(got) != 0 {
		t.Errorf("cancelled protect left snapshots %v", got)
	}
}

// TestRecover: at start, managed snapshots that no checkpoint names and
// partial images of the repository go; the base snapshot, other
// repositories' snapshots and the user's stay.
func TestRecover(t *testing.T) {
	ctx := context.Background()
	pool := cephtest.Pool()
	f := newFixture(t, pool)
	img := cephtest.Unique("plug-")
	f.c.CreateImage(pool, "", img, 8*mib, fastDiff)
	f.c.Write(pool, "", img, 0, randomData(6, mib))
	res := f.instance(t, "proj", pool+"/"+img)
	b, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: "proj", Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _ := f.repo.LoadCheckpoint(ctx, b.ID)
	base := cp.Tags[cephrbd.TagSnap]

	cl, err := f.p.cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, err := cl.OpenImage(ctx, cephrbd.Spec{Pool: pool, Image: img})
	if err != nil {
		t.Fatal(err)
	}
	defer head.Close()
	repoID := f.repo.Config().ID
	leftover := cephrbd.SnapName(repoID, time.Now(), "dead")
	other := cephrbd.SnapName("ffffffff-0000", time.Now(), "othr")
	for _, s := range []string{leftover, other, "users-own"} {
		if _, err := head.CreateSnapshot(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	partial := partialName(repoID, img+"-x")
	othersPartial := partialName("eeeeeeee-0000", img+"-x")
	for _, n := range []string{partial, othersPartial} {
		f.c.CreateImage(pool, "", n, mib, gorbd.FeatureLayering)
	}

	if err := f.p.Recover(ctx, "proj", f.repo); err != nil {
		t.Fatal(err)
	}
	got := f.c.Snaps(pool, "", img)
	slices.Sort(got)
	want := []string{base, other, "users-own"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("snapshots after Recover: %v, want %v", got, want)
	}
	imgs := f.c.Images(pool, "")
	if slices.Contains(imgs, partial) || !slices.Contains(imgs, othersPartial) {
		t.Errorf("images after Recover: %v; want %s gone and %s kept", imgs, partial, othersPartial)
	}
	// The base still serves: the next protection is incremental.
	b2, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: "proj", Resource: res, Previous: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	if cp2, _, _ := f.repo.LoadCheckpoint(ctx, b2.ID); cp2.Tags[cephrbd.TagMode] != "incremental" {
		t.Errorf("protection after Recover: tags %v, want an incremental", cp2.Tags)
	}
}

// TestProtectOptions: the plan's options reach the backup (full_every 1
// reads the whole image although the previous backup's snapshot is there,
// verify_sample 0 samples nothing) and bad ones are refused.
func TestProtectOptions(t *testing.T) {
	ctx := context.Background()
	pool := cephtest.Pool()
	f := newFixture(t, pool)
	img := cephtest.Unique("plugopt-")
	f.c.CreateImage(pool, "", img, 16*mib, fastDiff)
	f.c.Write(pool, "", img, 0, randomData(7, 5*mib))
	res := f.instance(t, "proj", pool+"/"+img)

	for _, opts := range []map[string]any{{"full_every": -1.0}, {"verify_sample": 2.0}, {"bogus": true}} {
		if _, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: "proj", Resource: res, Options: opts}); !errors.Is(err, plugins.ErrInvalidParameter) {
			t.Errorf("options %v: err = %v, want ErrInvalidParameter", opts, err)
		}
	}
	cp1 := f.protect(t, plugins.ProtectRequest{Project: "proj", Resource: res})
	f.c.Write(pool, "", img, 8*mib, randomData(8, 4096))
	opts := map[string]any{"full_every": 1.0, "verify_sample": 0.0}
	cp2 := f.protect(t, plugins.ProtectRequest{Project: "proj", Resource: res, Previous: cp1.ID, Options: opts})
	if cp2.Tags[cephrbd.TagMode] != "full" || !strings.Contains(cp2.Tags[cephrbd.TagFullReason], "full-every") {
		t.Fatalf("full_every 1: tags %v, want a whole read for full-every", cp2.Tags)
	}
	opts = map[string]any{"verify_sample": 0.0}
	f.c.Write(pool, "", img, 9*mib, randomData(9, 4096))
	cp3 := f.protect(t, plugins.ProtectRequest{Project: "proj", Resource: res, Previous: cp2.ID, Options: opts})
	if cp3.Tags[cephrbd.TagMode] != "incremental" || !strings.HasPrefix(cp3.Tags[cephrbd.TagSampled], "0 of ") {
		t.Fatalf("verify_sample 0: tags %v, want an incremental with nothing sampled", cp3.Tags)
	}
}

// TestScanManyImages: a scan opens images concurrently, yet lists each
// image once, finds every one by ID alone (no name hint: the whole scan),
// and skips a partial restore image.
func TestScanManyImages(t *testing.T) {
	ctx := context.Background()
	pool := cephtest.Pool()
	f := newFixture(t, pool+"/"+plugins.ProjectPlaceholder)
	proj := cephtest.Unique("scan")
	f.c.CreateNamespace(pool, proj)
	const n = 3 * openConcurrency
	want := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("img-%02d", i)
		f.c.CreateImage(pool, proj, name, mib, fastDiff)
		want[pool+"/"+proj+"/"+name] = true
	}
	f.c.CreateImage(pool, proj, partialName("0123456789", "img-00"), mib, fastDiff)

	got, err := f.p.Instances(ctx, proj)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d instances, want %d", len(got), n)
	}
	for _, r := range got {
		if !want[r.Name] {
			t.Fatalf("unexpected or repeated instance %s", r.Name)
		}
		delete(want, r.Name)
		found, err := f.p.Instance(ctx, proj, r.ID)
		if err != nil || found.Name != r.Name {
			t.Fatalf("Instance(%s) = %+v, %v; want %s", r.ID, found, err, r.Name)
		}
	}
}
