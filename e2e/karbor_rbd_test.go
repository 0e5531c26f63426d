//go:build ceph

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rbdType is the protectable type of the RBD plugin.
const rbdType = "OS::Cairn::RBDImage"

// startRBDAppliance runs `cairn serve` in dir with the RBD plugin over the
// test pool.
func startRBDAppliance(t *testing.T, c *cephT, dir string) *appliance {
	t.Helper()
	return startAppliance(t, dir, map[string]any{"rbd_pools": []string{c.pool}, "ceph_conf": os.Getenv("CEPH_CONF")})
}

// graphEntry is one resource of a checkpoint's resource_graph.
type graphEntry struct {
	Resource struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"resource"`
	Status      string `json:"status"`
	Reason      string `json:"reason"`
	BackupID    string `json:"backup_id"`
	Size        int64  `json:"size"`
	ReadBytes   int64  `json:"read_bytes"`
	StoredBytes int64  `json:"stored_bytes"`
}

// protectWithCLI runs checkpoint-create, polls checkpoint-show until the
// checkpoint is available, and returns its resources by type.
func protectWithCLI(t *testing.T, k karborCLI, planID string) (string, map[string]graphEntry) {
	t.Helper()
	cp := k.dict("checkpoint-create", karborProvider, planID)
	id := cp["id"]
	for deadline := time.Now().Add(2 * time.Minute); cp["status"] == "protecting"; cp = k.dict("checkpoint-show", karborProvider, id) {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint %s still protecting after 2 minutes: %v", id, cp)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if cp["status"] != "available" {
		t.Fatalf("checkpoint %s ended %q: %v\ndaemon stderr: %s", id, cp["status"], cp, clip(k.a.stderr.String()))
	}
	var graph []graphEntry
	if err := json.Unmarshal([]byte(cp["resource_graph"]), &graph); err != nil {
		t.Fatalf("checkpoint-show resource_graph is not JSON: %v\n%s", err, cp["resource_graph"])
	}
	byType := map[string]graphEntry{}
	for _, g := range graph {
		byType[g.Resource.Type] = g
	}
	return id, byType
}

// restoreWithCLI runs restore-create with one --parameters per resource
// and polls restore-show until it ends; it returns the final status.
func restoreWithCLI(t *testing.T, k karborCLI, cpID string, params ...string) map[string]string {
	t.Helper()
	args := []string{"restore-create", karborProvider, cpID}
	for _, p := range params {
		args = append(args, "--parameters", p)
	}
	rs := k.dict(args...)
	for deadline := time.Now().Add(2 * time.Minute); rs["status"] == "in_progress"; rs = k.dict("restore-show", rs["id"]) {
		if time.Now().After(deadline) {
			t.Fatalf("restore %s still in progress after 2 minutes: %v", rs["id"], rs)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return rs
}

// TestKarborRBD drives the RBD plugin with the real karbor client: a plan
// of an RBD image and a file, a full and an incremental checkpoint with
// their sizes, byte-exact restores to a new image and a new file, a
// refused restore onto an existing image, and deletes that take the
// image's base snapshot along.
func TestKarborRBD(t *testing.T) {
	bin := requireKarbor(t)
	c := requireCeph(t)
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(vols, "disk.img")
	const fileSize = 3*mib + 5
	writeRandomFile(t, file, 21, fileSize)
	const imgSize = 256 * mib
	img, _ := c.newImage(imgSize, fastDiffFeatures)
	c.write(img, 8*mib, randomBytes(22, int(24*mib)))
	c.write(img, 200*mib+3, randomBytes(23, 5000))

	a := startRBDAppliance(t, c, dir)
	k := karborCLI{t: t, bin: bin, a: a, project: "rbd-demo"}
	if got := column(k.table("protectable-list"), "Protectable type"); !slices.Contains(got, rbdType) || !slices.Contains(got, fileType) {
		t.Fatalf("protectable-list: %v, want %s and %s", got, rbdType, fileType)
	}
	imgName := c.pool + "/" + img
	var imgID string
	for _, r := range k.table("protectable-list-instances", rbdType) {
		if r["Name"] == imgName {
			imgID = r["Id"]
		}
	}
	if imgID == "" {
		t.Fatalf("protectable-list-instances %s lacks %s", rbdType, imgName)
	}
	fileID := fileInstanceID(t, a, k.project, file)

	resources := fmt.Sprintf("%s=%s=%s,%s=%s=%s", imgID, rbdType, imgName, fileID, fileType, file)
	// Options the image's plugin does not know are refused with the reason.
	if r := k.run("plan-create", "bad-options", karborProvider, resources,
		"--parameters", "resource_type="+rbdType+",verify_sample=2"); r.code == 0 || !strings.Contains(r.stderr, "verify_sample") {
		t.Fatalf("plan-create with verify_sample=2 was not refused with a message naming it:\n%s", r)
	}
	// The client sends option values as strings; the plan keeps them typed.
	plan := k.dict("plan-create", "rbd-and-file", karborProvider, resources,
		"--parameters", "resource_type="+rbdType+",verify_sample=0.5")
	planID := plan["id"]
	if !strings.Contains(plan["parameters"], `"verify_sample": 0.5`) {
		t.Fatalf("plan-create parameters %q, want verify_sample 0.5 as a number", plan["parameters"])
	}

	cp1, g1 := protectWithCLI(t, k, planID)
	if r := g1[rbdType]; r.Status != "available" || r.Size != imgSize || r.ReadBytes <= 0 || r.StoredBytes <= 0 {
		t.Errorf("image in checkpoint-show: %+v, want available, size %d and non-zero read and stored bytes", r, imgSize)
	}
	if r := g1[fileType]; r.Status != "available" || r.Size != fileSize || r.StoredBytes <= 0 {
		t.Errorf("file in checkpoint-show: %+v, want available, size %d", r, fileSize)
	}
	snaps := c.cairnSnaps(img)
	if len(snaps) != 1 {
		t.Fatalf("cairn snapshots after the first checkpoint: %v, want one (the base)", snaps)
	}

	// More data in one object: the second checkpoint reads that object.
	c.write(img, 100*mib+17, randomBytes(24, 4096))
	cp2, g2 := protectWithCLI(t, k, planID)
	if r := g2[rbdType]; r.ReadBytes <= 0 || r.ReadBytes > 4*mib || r.Size != imgSize {
		t.Errorf("incremental image backup read %d of %d bytes, want (0, 4 MiB]: %+v", r.ReadBytes, imgSize, r)
	}
	snaps = c.cairnSnaps(img)
	if len(snaps) != 1 {
		t.Fatalf("cairn snapshots after the second checkpoint: %v, want only the new base", snaps)
	}
	want := c.exportHash(img + "@" + snaps[0])
	if c.exportHash(img) != want {
		t.Fatal("test bug: the image changed after its snapshot")
	}

	// Restore both to new places and compare.
	restored := img + "-restored"
	t.Cleanup(func() { c.removeImage(restored) })
	outFile := filepath.Join(dir, "restores", "disk.out")
	rs := restoreWithCLI(t, k, cp2,
		fmt.Sprintf("resource_type=%s,resource_id=%s,restore_name=%s", rbdType, imgID, restored),
		fmt.Sprintf("resource_type=%s,resource_id=%s,restore_path=%s", fileType, fileID, outFile))
	if rs["status"] != "success" {
		t.Fatalf("restore of checkpoint %s: %v\ndaemon stderr: %s", cp2, rs, clip(a.stderr.String()))
	}
	if !strings.Contains(rs["restored"], "'rbd:"+c.pool+"/"+restored+"'") {
		t.Errorf("restore-show's restored = %q, want the image's rbd:%s/%s", rs["restored"], c.pool, restored)
	}
	if got := c.exportHash(restored); got != want {
		t.Errorf("restored image hashes to %s, want %s (the checkpoint's snapshot)", got, want)
	}
	if fileHash(t, outFile) != fileHash(t, file) {
		t.Error("restored file differs from the source")
	}
	for _, n := range c.images() {
		if strings.Contains(n, ".cairn-partial-") {
			t.Errorf("partial image %s left after the restore", n)
		}
	}

	// A restore onto an existing image fails and leaves it alone.
	before := c.exportHash(restored)
	rs = restoreWithCLI(t, k, cp1, fmt.Sprintf("resource_type=%s,resource_id=%s,restore_name=%s", rbdType, imgID, restored))
	if rs["status"] != "fail" || !strings.Contains(rs["resources_reason"], "exists") {
		t.Errorf("restore onto an existing image: %v, want fail saying it exists", rs)
	}
	if c.exportHash(restored) != before {
		t.Error("a refused restore changed the existing image")
	}

	// Deleting the checkpoints removes the base snapshot with the last one.
	k.must("checkpoint-delete", karborProvider, cp1)
	k.must("checkpoint-delete", karborProvider, cp2)
	if got := c.cairnSnaps(img); len(got) != 0 {
		t.Errorf("cairn snapshots after deleting every checkpoint: %v", got)
	}
	a.stop()
}

// images lists the images of the test pool.
func (c *cephT) images() []string {
	c.t.Helper()
	var names []string
	if err := json.Unmarshal([]byte(c.rbdCLI("ls", "--format", "json", c.pool)), &names); err != nil {
		c.t.Fatal(err)
	}
	return names
}

// TestApplianceKill9RBD kills `cairn serve` with SIGKILL while it
// protects an RBD image, after its snapshot was taken: the restart marks
// the checkpoint failed, removes the snapshot, and the next protection
// succeeds and restores exactly.
func TestApplianceKill9RBD(t *testing.T) {
	if testing.Short() {
		t.Skip("protects a 1 GiB image: skipped in -short mode")
	}
	c := requireCeph(t)
	dir := t.TempDir()
	// Big enough that the protection outlasts the wait before the kill
	// on a many-core machine (about 1.3 s per 512 MiB on two cores).
	const size = gib
	img, _ := c.newImage(size, fastDiffFeatures)
	for off := int64(0); off < size; off += 64 * mib {
		c.write(img, off, randomBytes(uint64(30+off/mib), int(64*mib)))
	}
	const pr = "crash-rbd"
	P := "/providers/" + karborProvider

	a := startRBDAppliance(t, c, dir)
	var imgID string
	for _, in := range a.ok(200, pr, "GET", "/protectables/"+rbdType+"/instances", nil).list(t, "instances") {
		if in["name"] == c.pool+"/"+img {
			imgID = in["id"].(string)
		}
	}
	if imgID == "" {
		t.Fatalf("no instance of %s", img)
	}
	plan := a.ok(200, pr, "POST", "/plans", map[string]any{"plan": map[string]any{
		"name": "image", "provider_id": karborProvider, "parameters": map[string]any{},
		"resources": []map[string]any{{"id": imgID, "type": rbdType, "name": c.pool + "/" + img}}}}).obj(t, "plan")["id"].(string)
	cp := a.createCheckpoint(pr, plan)
	// Kill once the snapshot exists and the reads are under way: a kill
	// inside the snapshot's creation would leave the image's exclusive
	// lock to a dead client, which the next writer waits out (30 s).
	seen := false
	for deadline := time.Now().Add(time.Minute); !seen && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		seen = len(c.cairnSnapsFast(img)) > 0
	}
	if !seen {
		t.Fatalf("no cairn snapshot of %s within a minute\ndaemon stderr: %s", img, clip(a.stderr.String()))
	}
	time.Sleep(300 * time.Millisecond)
	if st := a.ok(200, pr, "GET", P+"/checkpoints/"+cp, nil).obj(t, "checkpoint")["status"]; st != "protecting" {
		t.Fatalf("checkpoint %s is %v before the kill, want protecting (the kill must land mid-job)", cp, st)
	}
	a.kill()
	if got := c.cairnSnaps(img); len(got) != 1 {
		t.Fatalf("cairn snapshots right after the kill: %v, want the killed job's", got)
	}

	a = startRBDAppliance(t, c, dir)
	if got := c.cairnSnaps(img); len(got) != 0 {
		t.Errorf("cairn snapshots after the restart: %v, want none (the killed job's removed)", got)
	}
	ck := a.ok(200, pr, "GET", P+"/checkpoints/"+cp, nil).obj(t, "checkpoint")
	if reason, _ := ck["error_reason"].(string); ck["status"] != "error" || !strings.Contains(reason, "interrupted") {
		t.Fatalf("killed checkpoint after the restart: %v, want error, interrupted", ck)
	}

	cp2 := a.createCheckpoint(pr, plan)
	if ck := a.waitCheckpoint(pr, cp2); ck["status"] != "available" {
		t.Fatalf("checkpoint after the restart: %v\ndaemon stderr: %s", ck, clip(a.stderr.String()))
	}
	snaps := c.cairnSnaps(img)
	if len(snaps) != 1 {
		t.Fatalf("cairn snapshots after the next checkpoint: %v, want one", snaps)
	}
	restored := img + "-after-crash"
	t.Cleanup(func() { c.removeImage(restored) })
	r := a.ok(202, pr, "POST", "/restores", map[string]any{"restore": map[string]any{
		"provider_id": karborProvider, "checkpoint_id": cp2,
		"parameters": map[string]any{rbdType: map[string]any{"restore_name": restored}}}}).obj(t, "restore")
	if o := a.waitStatus(pr, "/restores/"+r["id"].(string), "restore", 2*time.Minute, "in_progress"); o["status"] != "success" {
		t.Fatalf("restore after the crash: %v", o)
	}
	if c.exportHash(restored) != c.exportHash(img+"@"+snaps[0]) {
		t.Fatal("restore after the crash differs from the checkpoint's snapshot")
	}
	a.stop()
}
