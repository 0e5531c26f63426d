//go:build ceph

package cinder

import (
	"context"
	"strings"
	"testing"

	"cairn/blockdev/serial"
	"cairn/internal/openstack"
	"cairn/internal/openstack/ostest"
)

// server boots a server of the test cloud (fake driver) from a new
// volume, to stand for the appliance's own; deleted when the test ends.
func (f *fixture) server(t *testing.T, nova *openstack.Nova) *openstack.Server {
	t.Helper()
	ctx := context.Background()
	name := "cairn-" + strings.ReplaceAll(t.Name(), "/", "-")
	flavor := ostest.Flavor(t, name)
	root := f.volume(t, name+"-root", nil)
	if err := f.cin.SetBootable(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	srv, err := nova.CreateServer(ctx, openstack.ServerSpec{Name: name, FlavorID: flavor, RootVolume: root.ID})
	if srv != nil {
		t.Cleanup(func() { _ = nova.DeleteServer(context.Background(), srv.ID) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestRecoverAttachPath plays a crash in the middle of the attach path:
// a journaled cairn snapshot, a temporary volume made from it and
// attached to the appliance's server, and (an overwrite_original
// restore) the original volume attached there too. Recover detaches
// both, deletes the temporary volume and then the snapshot, and empties
// the journal.
func TestRecoverAttachPath(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	nova, err := cloud.Nova(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.server(t, nova)
	f.p.server, f.p.devices = srv.ID, serial.Dir{Path: t.TempDir()}
	attach := func(id string) {
		t.Helper()
		if _, err := f.p.recordEntry(ctx, Entry{Kind: KindServerAttachment, Project: f.project, VolumeID: id, Server: srv.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := nova.AttachVolume(ctx, srv.ID, id, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := f.cin.WaitVolume(ctx, id, "in-use"); err != nil {
			t.Fatal(err)
		}
	}
	se, err := f.p.record(ctx, KindSnapshot, f.project, f.vol.ID, "cairn-crashed")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.cin.CreateSnapshot(ctx, f.vol.ID, "cairn-crashed", "", map[string]string{MetaManaged: "true",
		MetaRepository: f.repo.Config().ID, MetaJournal: se.ID})
	if err != nil {
		t.Fatal(err)
	}
	te, err := f.p.recordEntry(ctx, Entry{Kind: KindTempVolume, Project: f.project, VolumeID: f.vol.ID, Name: "cairn-read-crashed", Server: srv.ID})
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := f.cin.CreateVolume(ctx, openstack.VolumeSpec{Name: "cairn-read-crashed", SizeGiB: 1, SnapshotID: snap.ID,
		Metadata: map[string]string{MetaJournal: te.ID, MetaTemporary: f.vol.ID}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deleteVolume(t, tmp.ID) })
	attach(tmp.ID)
	attach(f.vol.ID)

	if err := f.p.Recover(ctx, f.project, f.repo); err != nil {
		t.Fatal(err)
	}
	if v, err := f.cin.Volume(ctx, tmp.ID); err == nil {
		t.Errorf("temporary volume left after Recover: %s, status %s", v.ID, v.Status)
	}
	if ss := f.cairnSnapshots(t); len(ss) != 0 {
		t.Errorf("snapshots left after Recover: %+v", ss)
	}
	if v, err := f.cin.Volume(ctx, f.vol.ID); err != nil || v.Status != "available" || len(v.Attachments) != 0 {
		t.Errorf("original volume after Recover: %+v, %v; want available, attached nowhere", v, err)
	}
	if len(f.j.m) != 0 {
		t.Errorf("journal entries left: %+v", f.j.m)
	}
}
