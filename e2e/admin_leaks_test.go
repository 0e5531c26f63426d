//go:build ceph

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"cairn/internal/openstack"
	"cairn/plugins/glance"
	"cairn/plugins/nova"
)

type leaksOut struct {
	Leaks []struct {
		Kind, ID, Reason, Project string
		Volume                    string `json:"volume_id"`
	}
	Kept []struct {
		ID     string
		Volume string `json:"volume_id"`
	}
	Skipped []string
}

// of returns the leaks and kept snapshots of the given volumes only (the
// shared test cloud may hold other tests' objects meanwhile).
func (l leaksOut) of(volumes ...string) leaksOut {
	var out leaksOut
	for _, x := range l.Leaks {
		if slices.Contains(volumes, x.Volume) {
			out.Leaks = append(out.Leaks, x)
		}
	}
	for _, x := range l.Kept {
		if slices.Contains(volumes, x.Volume) {
			out.Kept = append(out.Kept, x)
		}
	}
	return out
}

// adminLeaks runs `cairn admin leaks --all --json` as the test cloud's
// admin and returns its report and exit status.
func adminLeaks(t *testing.T) (leaksOut, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	args := []string{"admin", "leaks", "--all", "--json"}
	r := execute(t, ctx, exec.CommandContext(ctx, cairnBin, args...), "cairn", args)
	var out leaksOut
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("cairn admin leaks: %v\n%s", err, r)
	}
	return out, r.code
}

func (l leaksOut) ids() (leaks, kept []string) {
	for _, x := range l.Leaks {
		leaks = append(leaks, x.Kind+":"+x.ID)
	}
	for _, x := range l.Kept {
		kept = append(kept, x.ID)
	}
	return leaks, kept
}

// TestAdminLeaks leaves in the test cloud what a crashed appliance could:
// two cairn snapshots of one volume (the rotation keeps one) and an
// attachment without an instance. `cairn admin leaks` lists the older
// snapshot and the attachment, keeps the newer snapshot, and exits 1;
// once they are removed it lists nothing and exits 0.
func TestAdminLeaks(t *testing.T) {
	c := requireCinder(t)
	ctx := context.Background()
	vol := c.volume("e2e-leaks", 1, nil)
	meta := map[string]string{"cairn.managed": "true", "cairn.repository": "e2e-repo"}
	older, err := c.cin.CreateSnapshot(ctx, vol.ID, "cairn-older", "e2e", meta)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := c.cin.CreateSnapshot(ctx, vol.ID, "cairn-newer", "e2e", meta)
	if err != nil {
		t.Fatal(err)
	}
	att, err := c.cin.Attach(ctx, vol.ID, openstack.Connector(openstack.ConnectorHost()), "ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cin.Detach(ctx, att.ID) })

	out, code := adminLeaks(t)
	leaks, kept := out.ids()
	wantLeaks := []string{"attachment:" + att.ID, "snapshot:" + older.ID}
	if code != 1 || !slices.Equal(leaks, wantLeaks) || !slices.Contains(kept, newer.ID) || slices.Contains(kept, older.ID) {
		t.Fatalf("leaks %v kept %v exit %d; want leaks %v, %s kept, exit 1", leaks, kept, code, wantLeaks, newer.ID)
	}

	if err := c.cin.Detach(ctx, att.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.cin.DeleteSnapshot(ctx, older.ID); err != nil {
		t.Fatal(err)
	}
	out, code = adminLeaks(t)
	if leaks, kept := out.ids(); code != 0 || len(leaks) != 0 || !slices.Contains(kept, newer.ID) {
		t.Fatalf("after removing the leaks: leaks %v kept %v exit %d; want none, %s kept, exit 0", leaks, kept, code, newer.ID)
	}
}

// withIDs returns kind:id of the leaks whose ID is one of ids (the
// shared test cloud may hold other tests' leaks meanwhile), sorted.
func (l leaksOut) withIDs(ids ...string) []string {
	var out []string
	for _, x := range l.Leaks {
		if slices.Contains(ids, x.ID) {
			out = append(out, x.Kind+":"+x.ID)
		}
	}
	slices.Sort(out)
	return out
}

// TestAdminLeaksBeyondCinder leaves in the test cloud what a crashed
// appliance could outside Cinder's snapshots and attachments: a Glance
// image with the journal property of an image restore; a server with
// the journal metadata of a server restore, booted from a volume; an RBD
// group named as a server protection names it, holding a volume's image,
// with a group snapshot. `cairn admin leaks` lists each, the server's
// volume too, with the project and a reason that says how to remove it;
// once they are removed it lists none of them.
func TestAdminLeaksBeyondCinder(t *testing.T) {
	c := requireCinder(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true, WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cloud.Glance(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	nv, err := cloud.Nova(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])

	im, err := g.CreateImage(ctx, images.CreateOpts{Name: "e2e-leaks-image-" + tag, DiskFormat: "raw", ContainerFormat: "bare",
		Properties: map[string]string{glance.MetaJournal: "e2e-" + tag}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.DeleteImage(context.Background(), im.ID) })

	vol := c.volume("e2e-leaks-group-"+tag, 1, nil)
	group := nova.GroupName("e2e"+tag, rnd)
	gid := "volumes/" + group
	c.rbd.rbdCLI("group", "create", gid)
	t.Cleanup(func() { _ = exec.Command("rbd", "group", "rm", gid).Run() })
	c.rbd.rbdCLI("group", "image", "add", gid, "volumes/volume-"+vol.ID)
	c.rbd.rbdCLI("group", "snap", "create", gid+"@cairn")

	flavor := "e2e-leaks-flavor-" + tag
	e2eFlavor(t, flavor)
	root := c.volume("e2e-leaks-root-"+tag, 1, nil)
	if err := c.cin.SetBootable(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	fl, err := nv.FlavorByName(ctx, flavor)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := nv.CreateServer(ctx, openstack.ServerSpec{Name: "e2e-leaks-server-" + tag, FlavorID: fl.ID, RootVolume: root.ID,
		Metadata: map[string]string{nova.MetaJournal: "e2e-" + tag}})
	if srv != nil {
		t.Cleanup(func() { _ = nv.DeleteServer(context.Background(), srv.ID) })
	}
	if err != nil {
		t.Fatal(err)
	}

	mine := []string{im.ID, srv.ID, root.ID, gid, gid + "@cairn", vol.ID}
	out, code := adminLeaks(t)
	want := []string{"image:" + im.ID, "rbd_group:" + gid, "rbd_group_snapshot:" + gid + "@cairn", "server:" + srv.ID, "volume:" + root.ID}
	slices.Sort(want)
	if got := out.withIDs(mine...); code != 1 || !slices.Equal(got, want) || len(out.Skipped) != 0 {
		t.Fatalf("leaks %v, skipped %v, exit %d; want %v, nothing skipped, exit 1", got, out.Skipped, code, want)
	}
	removal := map[string]string{im.ID: "openstack image delete " + im.ID, srv.ID: "openstack server delete " + srv.ID,
		root.ID: "openstack volume delete " + root.ID, gid: "rbd group rm " + gid, gid + "@cairn": "rbd group snap rm " + gid + "@cairn"}
	for _, l := range out.Leaks {
		if r, ok := removal[l.ID]; ok && (!strings.Contains(l.Reason, r) || l.Project != c.project) {
			t.Errorf("leak %s %s: project %q reason %q; want project %s and a reason that says %q", l.Kind, l.ID, l.Project, l.Reason, c.project, r)
		}
	}

	if err := g.DeleteImage(ctx, im.ID); err != nil {
		t.Fatal(err)
	}
	c.rbd.rbdCLI("group", "rm", gid)
	if err := nv.DeleteServer(ctx, srv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cin.WaitVolume(ctx, root.ID, "available"); err != nil {
		t.Fatal(err)
	}
	out, _ = adminLeaks(t)
	if got := out.withIDs(mine...); len(got) != 0 {
		t.Fatalf("after removing them: leaks %v; want none of this test's", got)
	}
}
