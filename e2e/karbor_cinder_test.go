//go:build ceph

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn/internal/openstack"
	"cairn/internal/openstack/ostest"
)

// cinderType is the protectable type of the Cinder plugin.
const cinderType = "OS::Cinder::Volume"

// cinderT is a test's handle on the test cloud (scripts/openstack.sh):
// the admin's Cinder, and Ceph's pool "volumes" through the rbd CLI.
type cinderT struct {
	t       *testing.T
	env     map[string]string
	cin     *openstack.Cinder
	rbd     *cephT // pool "volumes"
	project string // the admin project's ID
}

func requireCinder(t *testing.T) *cinderT {
	t.Helper()
	env := ostest.Env(t) // sets CEPH_CONF to the cloud's cluster
	c := requireCeph(t)
	vio, err := c.conn.OpenIOContext("volumes")
	if err != nil {
		t.Fatalf("pool volumes of the test cloud: %v", err)
	}
	t.Cleanup(vio.Destroy)
	cloud, err := openstack.New(openstack.Config{FromEnv: true, WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cin, err := cloud.Cinder(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return &cinderT{t: t, env: env, cin: cin, rbd: &cephT{t: t, conn: c.conn, io: vio, pool: "volumes"}}
}

// volume creates a volume of sizeGiB, deleted (snapshots first) when the
// test ends.
func (c *cinderT) volume(name string, sizeGiB int, meta map[string]string) *openstack.Volume {
	c.t.Helper()
	v, err := c.cin.CreateVolume(context.Background(), openstack.VolumeSpec{Name: name, SizeGiB: sizeGiB, Metadata: meta})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { c.remove(v.ID) })
	if c.project == "" {
		c.project = v.TenantID
	}
	return v
}

func (c *cinderT) remove(id string) {
	ctx := context.Background()
	ss, _ := c.cin.Snapshots(ctx, id)
	for _, s := range ss {
		_ = c.cin.DeleteSnapshot(ctx, s.ID)
	}
	if err := c.cin.DeleteVolume(ctx, id); err != nil {
		c.t.Errorf("clean up volume %s: %v", id, err)
	}
}

// cairnSnapshots are the Cinder snapshots of volume that cairn made.
func (c *cinderT) cairnSnapshots(volume string) []openstack.Snapshot {
	c.t.Helper()
	ss, err := c.cin.Snapshots(context.Background(), volume)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []openstack.Snapshot
	for _, s := range ss {
		if s.Metadata["cairn.managed"] == "true" {
			out = append(out, s)
		}
	}
	return out
}

func (c *cinderT) attachments(volume string) []openstack.Attachment {
	c.t.Helper()
	as, err := c.cin.Attachments(context.Background(), volume)
	if err != nil {
		c.t.Fatal(err)
	}
	return as
}

// startCinderAppliance runs `cairn serve` in dir with the Cinder plugin
// acting as the test cloud's admin.
func startCinderAppliance(t *testing.T, c *cinderT, dir string) *appliance {
	t.Helper()
	return startCinderApplianceWith(t, c, dir, nil)
}

// startCinderApplianceWith is startCinderAppliance with more keys of the
// cloud section.
func startCinderApplianceWith(t *testing.T, c *cinderT, dir string, cloud map[string]any) *appliance {
	t.Helper()
	pw := filepath.Join(dir, "cloud-password")
	writeFile(t, pw, []byte(c.env["OS_PASSWORD"]+"\n"))
	section := map[string]any{
		"auth_url": c.env["OS_AUTH_URL"], "username": c.env["OS_USERNAME"], "password_file": pw,
		"user_domain_name": c.env["OS_USER_DOMAIN_NAME"], "region": c.env["OS_REGION_NAME"], "wait_timeout": "2m"}
	for k, v := range cloud {
		section[k] = v
	}
	return startAppliance(t, dir, map[string]any{"ceph_conf": c.env["CEPH_CONF"], "cloud": section})
}

// TestKarborCinder drives the Cinder plugin with the real karbor client:
// a plan of a standalone volume; a full and an incremental checkpoint
// reading about the change, each leaving exactly one cairn snapshot and
// no attachment; a restore to a new volume equal to the checkpoint's
// snapshot under `rbd export`; and deletes, the last of which removes
// the rotation snapshot through Cinder.
func TestKarborCinder(t *testing.T) {
	bin := requireKarbor(t)
	c := requireCinder(t)
	dir := t.TempDir()
	vol := c.volume("e2e-standalone", 1, map[string]string{"team": "storage"})
	img := "volume-" + vol.ID
	c.rbd.write(img, 0, randomBytes(41, int(16*mib)))

	a := startCinderAppliance(t, c, dir)
	k := karborCLI{t: t, bin: bin, a: a, project: c.project}
	if got := column(k.table("protectable-list"), "Protectable type"); !slices.Contains(got, cinderType) {
		t.Fatalf("protectable-list: %v, want %s", got, cinderType)
	}
	if ids := column(k.table("protectable-list-instances", cinderType), "Id"); !slices.Contains(ids, vol.ID) {
		t.Fatalf("protectable-list-instances %s: %v, want volume %s", cinderType, ids, vol.ID)
	}
	plan := k.dict("plan-create", "standalone-volume", karborProvider, fmt.Sprintf("%s=%s=%s", vol.ID, cinderType, vol.Name))

	cp1, g1 := protectWithCLI(t, k, plan["id"])
	if r := g1[cinderType]; r.Status != "available" || r.Size != 1<<30 || r.ReadBytes < 16*mib {
		t.Errorf("volume in checkpoint-show: %+v, want available, size 1 GiB, the 16 MiB written read", r)
	}
	s1 := c.cairnSnapshots(vol.ID)
	if len(s1) != 1 || !slices.Equal(c.rbd.snaps(img), []string{"snapshot-" + s1[0].ID}) {
		t.Fatalf("after the first checkpoint: cairn snapshots %+v, RBD snapshots %v; want one, snapshot-<its id>", s1, c.rbd.snaps(img))
	}

	c.rbd.write(img, 512*mib+7, randomBytes(42, int(mib)))
	cp2, g2 := protectWithCLI(t, k, plan["id"])
	// About the change: one or two 4 MiB RBD objects, not the 1 GiB volume.
	if r := g2[cinderType]; r.Status != "available" || r.ReadBytes < mib || r.ReadBytes > 9*mib {
		t.Errorf("incremental: %+v, want about the 1 MiB changed read (at most two RBD objects and a sample)", r)
	}
	s2 := c.cairnSnapshots(vol.ID)
	if len(s2) != 1 || s2[0].ID == s1[0].ID || !slices.Equal(c.rbd.snaps(img), []string{"snapshot-" + s2[0].ID}) {
		t.Fatalf("after the second checkpoint: cairn snapshots %+v, RBD snapshots %v; want only the new one", s2, c.rbd.snaps(img))
	}
	if as := c.attachments(vol.ID); len(as) != 0 {
		t.Errorf("attachments left on the volume: %+v", as)
	}
	want := c.rbd.exportHash(img + "@snapshot-" + s2[0].ID)

	rs := restoreWithCLI(t, k, cp2, fmt.Sprintf("resource_type=%s,resource_id=%s,restore_name=e2e-restored", cinderType, vol.ID))
	if rs["status"] != "success" {
		t.Fatalf("restore of checkpoint %s: %v\ndaemon stderr: %s", cp2, rs, clip(a.stderr.String()))
	}
	vs, err := c.cin.Volumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var restored *openstack.Volume
	for i := range vs {
		if vs[i].Name == "e2e-restored" {
			restored = &vs[i]
			t.Cleanup(func() { c.remove(vs[i].ID) })
		}
	}
	if restored == nil || !strings.Contains(rs["restored"], restored.ID) {
		t.Fatalf("no volume e2e-restored after the restore (restore-show restored = %q)", rs["restored"])
	}
	if restored.Size != vol.Size || restored.Status != "available" || restored.Metadata["team"] != "storage" {
		t.Errorf("restored volume %+v: want size %d, available, metadata team=storage", restored, vol.Size)
	}
	if got := c.rbd.exportHash("volume-" + restored.ID); got != want {
		t.Errorf("restored volume hashes to %s under rbd export, want %s (the checkpoint's snapshot)", got, want)
	}
	if as := c.attachments(restored.ID); len(as) != 0 {
		t.Errorf("attachments left on the restored volume: %+v", as)
	}

	// The rotation snapshot stays while a checkpoint of the volume does,
	// and goes with the last one.
	k.must("checkpoint-delete", karborProvider, cp1)
	if s := c.cairnSnapshots(vol.ID); len(s) != 1 {
		t.Errorf("after deleting the older checkpoint: cairn snapshots %+v, want the rotation snapshot", s)
	}
	k.must("checkpoint-delete", karborProvider, cp2)
	if s := c.cairnSnapshots(vol.ID); len(s) != 0 {
		t.Errorf("after deleting every checkpoint: cairn snapshots %+v, want none", s)
	}
	if s := c.rbd.snaps(img); len(s) != 0 {
		t.Errorf("RBD snapshots of %s after deleting every checkpoint: %v", img, s)
	}
	for _, id := range []string{vol.ID, restored.ID} {
		if as := c.attachments(id); len(as) != 0 {
			t.Errorf("attachments left on volume %s: %+v", id, as)
		}
	}
	// The operator's view of the same: nothing of cairn's on the test's
	// volumes (the shared test cloud may hold other tests' objects).
	if out := adminLeaksOf(t, vol.ID, restored.ID); len(out.Leaks) != 0 || len(out.Kept) != 0 {
		t.Errorf("cairn admin leaks after deleting every checkpoint: %+v; want nothing on this test's volumes", out)
	}
	a.stop()
}
