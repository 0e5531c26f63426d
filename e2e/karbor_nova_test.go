//go:build ceph

package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"cairn/internal/openstack"
	"cairn/internal/openstack/ostest"
)

// novaType is the protectable type of the Nova plugin.
const novaType = "OS::Nova::Server"

// e2eFlavor creates a public flavor (the test cloud has none), deleted
// when the test ends.
func e2eFlavor(t *testing.T, name string) { ostest.Flavor(t, name) }

// TestKarborNova drives the Nova plugin with the real karbor client: a
// plan of a server booted from a volume with a second data volume;
// protect; write into both volumes' RBD images; protect again (reading
// about the change, at one consistent point); restore the server, which
// becomes ACTIVE with the restored volumes attached in the original
// order and byte-equal under rbd export; delete the checkpoints, after
// which no cairn snapshot or extra attachment is left.
func TestKarborNova(t *testing.T) {
	bin := requireKarbor(t)
	c := requireCinder(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	nova, err := cloud.Nova(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	e2eFlavor(t, "e2e-nova-flavor")
	root := c.volume("e2e-server-root", 1, nil)
	data := c.volume("e2e-server-data", 1, nil)
	if err := c.cin.SetBootable(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	fl, err := nova.FlavorByName(ctx, "e2e-nova-flavor")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := nova.CreateServer(ctx, openstack.ServerSpec{Name: "e2e-server", FlavorID: fl.ID, RootVolume: root.ID,
		Metadata: map[string]string{"app": "e2e"}})
	if srv != nil {
		t.Cleanup(func() { _ = nova.DeleteServer(context.Background(), srv.ID) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nova.AttachVolume(ctx, srv.ID, data.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cin.WaitVolume(ctx, data.ID, "in-use"); err != nil {
		t.Fatal(err)
	}
	c.rbd.write("volume-"+root.ID, 0, randomBytes(51, int(8*mib)))
	c.rbd.write("volume-"+data.ID, 0, randomBytes(52, int(8*mib)))

	a := startCinderAppliance(t, c, t.TempDir())
	k := karborCLI{t: t, bin: bin, a: a, project: c.project}
	if ids := column(k.table("protectable-list-instances", novaType), "Id"); !slices.Contains(ids, srv.ID) {
		t.Fatalf("protectable-list-instances %s: %v, want server %s", novaType, ids, srv.ID)
	}
	plan := k.dict("plan-create", "server", karborProvider, fmt.Sprintf("%s=%s=%s", srv.ID, novaType, srv.Name))
	cp1, g1 := protectWithCLI(t, k, plan["id"])
	if r := g1[novaType]; r.Status != "available" || r.ReadBytes < 16*mib {
		t.Errorf("server in checkpoint-show: %+v, want available, the 16 MiB written read", r)
	}
	c.rbd.write("volume-"+root.ID, 300*mib, randomBytes(53, int(mib)))
	c.rbd.write("volume-"+data.ID, 600*mib, randomBytes(54, int(mib)))
	cp2, g2 := protectWithCLI(t, k, plan["id"])
	if r := g2[novaType]; r.Status != "available" || r.ReadBytes < 2*mib || r.ReadBytes > 14*mib {
		t.Errorf("incremental: %+v, want about the 2 MiB changed read (a 4 MiB object each and samples)", r)
	}
	wantRoot, wantData := c.rbd.exportHash("volume-"+root.ID), c.rbd.exportHash("volume-"+data.ID)

	rs := restoreWithCLI(t, k, cp2, fmt.Sprintf("resource_type=%s,resource_id=%s,restore_name=e2e-server-restored", novaType, srv.ID))
	if rs["status"] != "success" {
		t.Fatalf("restore of checkpoint %s: %v\ndaemon stderr: %s", cp2, rs, clip(a.stderr.String()))
	}
	ss, err := nova.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var restored *openstack.Server
	for i := range ss {
		if ss[i].Name == "e2e-server-restored" {
			restored = &ss[i]
		}
	}
	if restored == nil {
		t.Fatalf("no server e2e-server-restored after the restore: %v", rs)
	}
	as, err := nova.VolumeAttachments(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nova.DeleteServer(context.Background(), restored.ID); err != nil {
			t.Errorf("clean up the restored server: %v", err)
		}
		for _, a := range as {
			c.remove(a.VolumeID)
		}
	})
	if restored.Status != "ACTIVE" || restored.Metadata["app"] != "e2e" || len(as) != 2 {
		t.Fatalf("restored server %+v with attachments %+v: want ACTIVE, metadata app=e2e, two volumes", restored, as)
	}
	if got := c.rbd.exportHash("volume-" + as[0].VolumeID); got != wantRoot {
		t.Errorf("restored root volume (first attached) hashes to %s, want %s", got, wantRoot)
	}
	if got := c.rbd.exportHash("volume-" + as[1].VolumeID); got != wantData {
		t.Errorf("restored data volume (second attached) hashes to %s, want %s", got, wantData)
	}

	k.must("checkpoint-delete", karborProvider, cp1)
	k.must("checkpoint-delete", karborProvider, cp2)
	for _, id := range []string{root.ID, data.ID} {
		if s := c.cairnSnapshots(id); len(s) != 0 {
			t.Errorf("volume %s: cairn snapshots %+v after deleting every checkpoint", id, s)
		}
		if s := c.rbd.snaps("volume-" + id); len(s) != 0 {
			t.Errorf("RBD snapshots of volume %s after deleting every checkpoint: %v", id, s)
		}
		if as := c.attachments(id); len(as) != 1 || as[0].Instance != srv.ID {
			t.Errorf("volume %s attachments %+v: want only the server's", id, as)
		}
	}
	a.stop()
}
