//go:build ceph

package nova

import (
	"bytes"
	"context"
	"testing"

	gorbd "github.com/ceph/go-ceph/rbd"

	"cairn/internal/openstack"
	"cairn/plugins"
	"cairn/plugins/cinder"
)

// TestEphemeralDisk: an RBD-backed ephemeral root disk
// (POOL/<server id>_disk) is read directly and restores into a new
// volume. The fake Nova driver makes no such disk: the test creates the
// RBD image itself, under a made-up server ID.
func TestEphemeralDisk(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	srv := &openstack.Server{ID: "0b7e6c1e-0000-4000-8000-" + "00000000e0e0", Name: "cairn-ephemeral", TenantID: f.project}
	image := srv.ID + "_disk"
	if err := gorbd.CreateImage(f.io, image, 1<<30, gorbd.NewRbdImageOptions()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		img, err := gorbd.OpenImage(f.io, image, gorbd.NoSnapshot)
		if err == nil {
			snaps, _ := img.GetSnapshotNames()
			for _, s := range snaps {
				_ = img.GetSnapshot(s.Name).Remove()
			}
			_ = img.Close()
		}
		_ = gorbd.RemoveImage(f.io, image)
	})
	want := random(7, 4*mib)
	img := f.image(t, image)
	if _, err := img.WriteAt(want, 64*mib); err != nil {
		t.Fatal(err)
	}
	_ = img.Close()

	m := &Manifest{Server: Definition{Flavor: Flavor{Disk: 1}}}
	d, cp, err := f.p.ephemeral(ctx, f.repo, f.project, srv, m, map[string]string{"test": "1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d == nil || d.Pool != "volumes" || d.Image != image || cp.Tags[cinder.TagVolume] != image || cp.Tags[cinder.TagSizeGiB] != "1" {
		t.Fatalf("ephemeral backup %+v, tags %v", d, cp.Tags)
	}
	if r := cp.Stats.ReadBytes; r < int64(len(want)) || r > 16*mib {
		t.Errorf("read %d bytes of a 1 GiB disk holding 4 MiB: want about the allocated 4 MiB", r)
	}
	id, err := f.vols.Restore(ctx, f.repo, plugins.RestoreRequest{Project: f.project, BackupID: d.BackupID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deleteVolume(t, f.cin, id) })
	got := f.read(t, id)
	if !bytes.Equal(got[64*mib:64*mib+len(want)], want) || len(got) != 1<<30 {
		t.Error("the volume restored from the ephemeral disk differs from it")
	}
	// A server without such a disk has none.
	if d, _, err := f.p.ephemeral(ctx, f.repo, f.project, f.server, m, nil, nil); d != nil || err != nil {
		t.Errorf("server %s has no ephemeral disk: got %+v, %v", f.server.ID, d, err)
	}
}
