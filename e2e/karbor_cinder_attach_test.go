//go:build ceph

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"cairn/internal/openstack"
)

// TestKarborCinderAttach drives the Cinder plugin's attach path with the
// real karbor client. The appliance's "own server" is a server of the
// test cloud; a fake hypervisor (fakeHypervisor: qemu-storage-daemon's
// FUSE export of the RBD image and a loop device) gives each volume
// attached to it a device in the appliance's device directory. It
// protects a volume through the attach path (a temporary volume from the
// cairn snapshot), changes 1 MiB and protects again (reading about the
// change: RBD diff picks the extents, the device gives the bytes),
// restores to a new volume through the attach path, restores over the
// original (detached: through either path; in-use: refused), and checks
// the checkpoints' tags and that no temporary volume, snapshot or
// attachment of cairn's is left (cairn admin leaks).
func TestKarborCinderAttach(t *testing.T) {
	bin := requireKarbor(t)
	c := requireCinder(t)
	ctx := context.Background()
	srv := applianceServer(t, c, "e2e-attach-appliance")
	devDir := t.TempDir()
	hv := startHypervisor(t, c, srv.ID, devDir)
	vol := c.volume("e2e-attach", 1, map[string]string{"team": "storage"})
	img := "volume-" + vol.ID
	c.rbd.write(img, 0, randomBytes(61, int(16*mib)))

	dir := t.TempDir()
	cloud := map[string]any{"server_id": srv.ID, "device_dir": devDir, "device_wait": "1m"}
	a := startCinderApplianceWith(t, c, dir, cloud)
	k := karborCLI{t: t, bin: bin, a: a, project: c.project}
	res := fmt.Sprintf("%s=%s=%s", vol.ID, cinderType, vol.Name)
	if r := k.run("plan-create", "bad-path", karborProvider, res, "--parameters", "resource_type="+cinderType+",read_path=nbd"); r.code == 0 || !strings.Contains(r.stderr, "read_path") {
		t.Fatalf("plan-create with read_path=nbd was not refused with a message naming it:\n%s", r)
	}
	plan := k.dict("plan-create", "attach-volume", karborProvider, res, "--parameters", "resource_type="+cinderType+",read_path=attach")

	cp1, g1 := protectWithCLI(t, k, plan["id"])
	if r := g1[cinderType]; r.Status != "available" || r.Size != 1<<30 || r.ReadBytes < 16*mib {
		t.Errorf("volume in checkpoint-show: %+v, want available, size 1 GiB, the 16 MiB written read", r)
	}
	seen := hv.attachedVolumes()
	if len(seen) != 1 || seen[0] == vol.ID {
		t.Fatalf("volumes attached to the appliance's server during the first protection: %v; want one temporary volume", seen)
	}
	s1 := c.cairnSnapshots(vol.ID)
	if len(s1) != 1 {
		t.Fatalf("after the first checkpoint: cairn snapshots %+v; want one", s1)
	}
	checkGone(t, c, seen[0])

	c.rbd.write(img, 512*mib+7, randomBytes(62, int(mib)))
	cp2, g2 := protectWithCLI(t, k, plan["id"])
	// About the change: one or two 4 MiB RBD objects, not the 1 GiB volume.
	if r := g2[cinderType]; r.Status != "available" || r.ReadBytes < mib || r.ReadBytes > 9*mib {
		t.Errorf("incremental through the attachment: %+v, want about the 1 MiB changed read (RBD diff, at most two objects and a sample)", r)
	}
	seen = hv.attachedVolumes()
	if len(seen) != 2 || seen[1] == vol.ID || seen[1] == seen[0] {
		t.Fatalf("volumes attached to the appliance's server: %v; want a second temporary volume", seen)
	}
	checkGone(t, c, seen[1])
	s2 := c.cairnSnapshots(vol.ID)
	if len(s2) != 1 || s2[0].ID == s1[0].ID {
		t.Fatalf("after the second checkpoint: cairn snapshots %+v; want only the new one", s2)
	}
	want := c.rbd.exportHash(img + "@snapshot-" + s2[0].ID)

	// A new volume, written through its device on the appliance.
	rs := restoreWithCLI(t, k, cp2, fmt.Sprintf("resource_type=%s,resource_id=%s,restore_name=e2e-attach-restored,read_path=attach", cinderType, vol.ID))
	if rs["status"] != "success" {
		t.Fatalf("restore of checkpoint %s: %v\nfake hypervisor: %s\ndaemon stderr: %s", cp2, rs, hv.report(), clip(a.stderr.String()))
	}
	restored := volumeNamed(t, c, "e2e-attach-restored")
	if !strings.Contains(rs["restored"], restored.ID) || restored.Status != "available" || restored.Metadata["team"] != "storage" {
		t.Errorf("restored volume %+v (restore-show restored %q): want it named there, available, metadata team=storage", restored, rs["restored"])
	}
	if seen = hv.attachedVolumes(); !slices.Contains(seen, restored.ID) {
		t.Errorf("the restored volume %s was not written through the appliance's attachment (attached: %v)", restored.ID, seen)
	}
	if got := c.rbd.exportHash("volume-" + restored.ID); got != want {
		t.Errorf("restored volume hashes to %s under rbd export, want %s (the checkpoint's snapshot)", got, want)
	}

	// Over the original, detached: through either path.
	for _, path := range []string{"direct", "attach"} {
		c.rbd.write(img, 100*mib, randomBytes(63, int(2*mib)))
		rs := restoreWithCLI(t, k, cp2, fmt.Sprintf("resource_type=%s,resource_id=%s,overwrite_original=true,read_path=%s", cinderType, vol.ID, path))
		if rs["status"] != "success" || !strings.Contains(rs["restored"], vol.ID) {
			t.Fatalf("overwrite_original restore (read_path %s): %v\nfake hypervisor: %s\ndaemon stderr: %s", path, rs, hv.report(), clip(a.stderr.String()))
		}
		if got := c.rbd.exportHash(img); got != want {
			t.Errorf("original volume after overwrite_original (read_path %s) hashes to %s, want %s", path, got, want)
		}
	}
	if seen = hv.attachedVolumes(); !slices.Contains(seen, vol.ID) {
		t.Errorf("overwrite_original with read_path attach did not attach the original volume %s (attached: %v)", vol.ID, seen)
	}
	// Over the original, in-use: refused, the volume untouched.
	attachToServer(t, c, srv.ID, vol.ID)
	c.rbd.write(img, 100*mib, randomBytes(64, int(mib)))
	changed := c.rbd.exportHash(img)
	rs = restoreWithCLI(t, k, cp2, fmt.Sprintf("resource_type=%s,resource_id=%s,overwrite_original=true", cinderType, vol.ID))
	if rs["status"] == "success" || !strings.Contains(fmt.Sprint(rs), "in-use") {
		t.Errorf("overwrite_original of an in-use volume: %v; want a failure saying it is in-use", rs)
	}
	if got := c.rbd.exportHash(img); got != changed {
		t.Errorf("the in-use volume changed under a refused overwrite_original restore")
	}
	detachFromServer(t, c, srv.ID, vol.ID)

	// The checkpoints say how they were read.
	a.stop()
	repo := &env{t: t, repo: dir, project: c.project}
	var cps []rbdCheckpoint
	if err := json.Unmarshal([]byte(repo.must("checkpoints", "--json")), &cps); err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		if cp.Tags["cinder.read_path"] != "attach" || cp.Tags["cinder.volume_id"] != vol.ID {
			t.Errorf("checkpoint %s: cinder.read_path %q, cinder.volume_id %q; want attach, %s", cp.ID, cp.Tags["cinder.read_path"], cp.Tags["cinder.volume_id"], vol.ID)
		}
		if cp.ID == cp2 && cp.Tags["rbd.mode"] != "incremental" {
			t.Errorf("checkpoint %s: rbd.mode %q, want incremental (RBD diff through the attach path)", cp.ID, cp.Tags["rbd.mode"])
		}
	}
	if len(cps) != 2 {
		t.Errorf("repository holds %d checkpoints, want 2", len(cps))
	}

	a = startCinderApplianceWith(t, c, dir, cloud)
	k.a = a
	k.must("checkpoint-delete", karborProvider, cp1)
	k.must("checkpoint-delete", karborProvider, cp2)
	if s := c.cairnSnapshots(vol.ID); len(s) != 0 {
		t.Errorf("after deleting every checkpoint: cairn snapshots %+v, want none", s)
	}
	vs, err := c.cin.Volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Metadata["cairn.temporary_of"] != "" || v.Metadata["cairn.journal"] != "" {
			t.Errorf("volume %s (%s) of cairn's left: metadata %v", v.ID, v.Name, v.Metadata)
		}
	}
	for _, id := range []string{vol.ID, restored.ID} {
		if as := c.attachments(id); len(as) != 0 {
			t.Errorf("attachments left on volume %s: %+v", id, as)
		}
	}
	// The operator's view: nothing of cairn's on this test's volumes (the
	// shared cloud may hold other tests' objects, so the exit status is
	// not asked).
	if out := adminLeaksOf(t, append(hv.attachedVolumes(), vol.ID, restored.ID)...); len(out.Leaks) != 0 || len(out.Kept) != 0 {
		t.Errorf("cairn admin leaks after deleting every checkpoint: %+v; want nothing on this test's volumes", out)
	}
	a.stop()
}

// adminLeaksOf runs cairn admin leaks and returns what it lists of the
// given volumes.
func adminLeaksOf(t *testing.T, volumes ...string) leaksOut {
	t.Helper()
	out, _ := adminLeaks(t)
	return out.of(volumes...)
}

// checkGone fails the test unless volume id (a temporary volume) is
// deleted.
func checkGone(t *testing.T, c *cinderT, id string) {
	t.Helper()
	v, err := c.cin.Volume(context.Background(), id)
	if err == nil {
		t.Errorf("temporary volume %s (%s, metadata %v) still there, status %s", id, v.Name, v.Metadata, v.Status)
	}
}

// volumeNamed returns the volume called name, removed when the test ends.
func volumeNamed(t *testing.T, c *cinderT, name string) *openstack.Volume {
	t.Helper()
	vs, err := c.cin.Volumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range vs {
		if vs[i].Name == name {
			t.Cleanup(func() { c.remove(vs[i].ID) })
			return &vs[i]
		}
	}
	t.Fatalf("no volume %s", name)
	return nil
}

func novaOf(t *testing.T) *openstack.Nova {
	t.Helper()
	cloud, err := openstack.New(openstack.Config{FromEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	nova, err := cloud.Nova(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return nova
}

func attachToServer(t *testing.T, c *cinderT, server, volume string) {
	t.Helper()
	if _, err := novaOf(t).AttachVolume(context.Background(), server, volume, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cin.WaitVolume(context.Background(), volume, "in-use"); err != nil {
		t.Fatal(err)
	}
}

func detachFromServer(t *testing.T, c *cinderT, server, volume string) {
	t.Helper()
	if err := novaOf(t).DetachVolume(context.Background(), server, volume); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cin.WaitVolume(context.Background(), volume, "available"); err != nil {
		t.Fatal(err)
	}
}
