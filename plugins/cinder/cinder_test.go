//go:build ceph

package cinder

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	gorbd "github.com/ceph/go-ceph/rbd"

	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/internal/openstack/ostest"
	"cairn/plugins"
)

const mib = 1 << 20

// memJournal is a Journal in memory.
type memJournal struct {
	mu sync.Mutex
	m  map[string]Entry
}

func (j *memJournal) Record(_ context.Context, e Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[e.ID] = e
	return nil
}

func (j *memJournal) Forget(_ context.Context, id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.m, id)
	return nil
}

func (j *memJournal) Entries(_ context.Context, project string) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Entry
	for _, e := range j.m {
		if e.Project == project {
			out = append(out, e)
		}
	}
	return out, nil
}

// fixture is the plugin over the test cloud, a fresh repository and a
// fresh 1 GiB volume of the admin's project.
type fixture struct {
	p       *Plugin
	j       *memJournal
	repo    *dedup.Repository
	cin     *openstack.Cinder
	io      *rados.IOContext
	project string
	vol     *openstack.Volume
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := ostest.Env(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true, WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{j: &memJournal{m: map[string]Entry{}}}
	f.p, err = New(Config{Cloud: cloud, Journal: f.j, Ceph: cephrbd.ConnOptions{Conf: env["CEPH_CONF"]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.p.Close() })
	f.repo, err = dedup.Init(ctx, filepath.Join(t.TempDir(), "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.repo.Close() })
	if f.cin, err = cloud.Cinder(ctx, ""); err != nil {
		t.Fatal(err)
	}
	f.vol = f.volume(t, "cairn-test-"+t.Name(), map[string]string{"purpose": "test"})
	f.project = f.vol.TenantID
	conn, err := rados.NewConn()
	if err == nil {
		err = conn.ReadConfigFile(env["CEPH_CONF"])
	}
	if err == nil {
		err = conn.Connect()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Shutdown)
	if f.io, err = conn.OpenIOContext("volumes"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.io.Destroy)
	return f
}

// volume creates a 1 GiB volume, deleted (with its snapshots) when the
// test ends.
func (f *fixture) volume(t *testing.T, name string, meta map[string]string) *openstack.Volume {
	t.Helper()
	v, err := f.cin.CreateVolume(context.Background(), openstack.VolumeSpec{Name: name, SizeGiB: 1, Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deleteVolume(t, v.ID) })
	return v
}

func (f *fixture) deleteVolume(t *testing.T, id string) {
	ctx := context.Background()
	ss, _ := f.cin.Snapshots(ctx, id)
	for _, s := range ss {
		_ = f.cin.DeleteSnapshot(ctx, s.ID)
	}
	if err := f.cin.DeleteVolume(ctx, id); err != nil {
		t.Errorf("clean up volume %s: %v", id, err)
	}
}

// write writes data into volume id's RBD image at off.
func (f *fixture) write(t *testing.T, id string, off int64, data []byte) {
	t.Helper()
	img, err := gorbd.OpenImage(f.io, "volume-"+id, gorbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if _, err := img.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// read reads all of volume id's RBD image.
func (f *fixture) read(t *testing.T, id string) []byte {
	t.Helper()
	img, err := gorbd.OpenImageReadOnly(f.io, "volume-"+id, gorbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	size, err := img.GetSize()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := img.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) protect(t *testing.T, previous string) *dedup.Checkpoint {
	t.Helper()
	res, err := f.p.Instance(context.Background(), f.project, f.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.p.Protect(context.Background(), f.repo, plugins.ProtectRequest{Project: f.project, Resource: res,
		Tags: map[string]string{"test": "1"}, Previous: previous})
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := f.repo.LoadCheckpoint(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// cairnSnapshots are the volume's snapshots cairn made for f.repo.
func (f *fixture) cairnSnapshots(t *testing.T) []openstack.Snapshot {
	t.Helper()
	ss, err := f.cin.Snapshots(context.Background(), f.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []openstack.Snapshot
	for _, s := range ss {
		if isRotation(&s, f.repo.Config().ID) {
			out = append(out, s)
		}
	}
	return out
}

func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestProtectIncrementalRestoreDelete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, f.vol.ID, 0, random(1, 16*mib))

	first := f.protect(t, "")
	if first.Tags[cephrbd.TagMode] != "full" || first.Tags[TagVolume] != f.vol.ID {
		t.Fatalf("first checkpoint tags %v: want a full read of volume %s", first.Tags, f.vol.ID)
	}
	if ss := f.cairnSnapshots(t); len(ss) != 1 || ss[0].ID != first.Tags[TagSnapshot] {
		t.Fatalf("after the first protection: cairn snapshots %+v, want only %s", ss, first.Tags[TagSnapshot])
	}

	f.write(t, f.vol.ID, 512*mib, random(2, mib))
	second := f.protect(t, first.ID)
	if second.Tags[cephrbd.TagMode] != "incremental" {
		t.Fatalf("second checkpoint: mode %q (%s), want incremental", second.Tags[cephrbd.TagMode], second.Tags[cephrbd.TagFullReason])
	}
	// About the 1 MiB changed: with fast-diff the diff is by RBD object
	// (4 MiB), plus the verification sample; not the 1 GiB volume nor the
	// 17 MiB written in all.
	if r := second.Stats.ReadBytes; r < mib || r > 5*mib {
		t.Errorf("second protection read %d bytes (diff %s), want about the 1 MiB changed (at most one 4 MiB object and a sample)",
			r, second.Tags[cephrbd.TagDiff])
	}
	ss := f.cairnSnapshots(t)
	if len(ss) != 1 || ss[0].ID != second.Tags[TagSnapshot] {
		t.Fatalf("after the second protection: cairn snapshots %+v, want only %s (the older one deleted through Cinder)", ss, second.Tags[TagSnapshot])
	}
	if as, err := f.cin.Attachments(ctx, f.vol.ID); err != nil || len(as) != 0 {
		t.Errorf("attachments left on the volume: %+v, %v", as, err)
	}

	id, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: f.project, BackupID: second.ID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deleteVolume(t, id) })
	nv, err := f.cin.Volume(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if nv.Size != f.vol.Size || nv.Status != "available" || !strings.HasPrefix(nv.Name, f.vol.Name+"-restore-") ||
		nv.Metadata["purpose"] != "test" || nv.Metadata[MetaJournal] != "" {
		t.Errorf("restored volume %+v: want size %d, available, name %s-restore-…, metadata purpose=test only", nv, f.vol.Size, f.vol.Name)
	}
	if !bytes.Equal(f.read(t, id), f.read(t, f.vol.ID)) {
		t.Error("the restored volume differs from the protected one")
	}
	if as, err := f.cin.Attachments(ctx, id); err != nil || len(as) != 0 {
		t.Errorf("attachments left on the restored volume: %+v, %v", as, err)
	}

	// Deleting the older checkpoint keeps the rotation snapshot; deleting
	// the last one removes it.
	if err := f.p.Delete(ctx, f.repo, first.ID); err != nil {
		t.Fatal(err)
	}
	if ss := f.cairnSnapshots(t); len(ss) != 1 {
		t.Errorf("after deleting the older checkpoint: cairn snapshots %+v, want the rotation snapshot", ss)
	}
	if err := f.p.Delete(ctx, f.repo, second.ID); err != nil {
		t.Fatal(err)
	}
	if ss := f.cairnSnapshots(t); len(ss) != 0 {
		t.Errorf("after deleting the last checkpoint: cairn snapshots %+v, want none", ss)
	}
	if err := f.p.Delete(ctx, f.repo, second.ID); err != nil {
		t.Errorf("Delete is idempotent: %v", err)
	}
	if len(f.j.m) != 0 {
		t.Errorf("journal entries left: %+v", f.j.m)
	}
}

func TestInstancesAndNotFound(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	all, err := f.p.Instances(ctx, f.project)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range all {
		found = found || r.ID == f.vol.ID && r.Type == Type && r.Name == f.vol.Name
	}
	if !found {
		t.Errorf("Instances %+v lack volume %s", all, f.vol.ID)
	}
	if _, err := f.p.Instance(ctx, f.project, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Errorf("missing volume: %v, want ErrInstanceNotFound", err)
	}
	if _, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: f.project, BackupID: "x", Target: "/tmp/x"}); !errors.Is(err, plugins.ErrInvalidParameter) {
		t.Errorf("restore to a path: %v, want ErrInvalidParameter", err)
	}
}

// TestRecoverRemovesJournaled plays a crash: a journaled snapshot and
// attachment that no protection finished are removed by Recover.
func TestRecoverRemovesJournaled(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	se, err := f.p.record(ctx, KindSnapshot, f.project, f.vol.ID, "cairn-crashed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cin.CreateSnapshot(ctx, f.vol.ID, "cairn-crashed", "", map[string]string{MetaManaged: "true",
		MetaRepository: f.repo.Config().ID, MetaJournal: se.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.record(ctx, KindAttachment, f.project, f.vol.ID, f.p.host); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cin.Attach(ctx, f.vol.ID, openstack.Connector(f.p.host), "ro"); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Recover(ctx, f.project, f.repo); err != nil {
		t.Fatal(err)
	}
	if ss := f.cairnSnapshots(t); len(ss) != 0 {
		t.Errorf("snapshots left after Recover: %+v", ss)
	}
	if as, err := f.cin.Attachments(ctx, f.vol.ID); err != nil || len(as) != 0 {
		t.Errorf("attachments left after Recover: %+v, %v", as, err)
	}
	if len(f.j.m) != 0 {
		t.Errorf("journal entries left: %+v", f.j.m)
	}
}
