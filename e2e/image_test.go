package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestApplianceImage builds the Glance image (make image's image/build.sh)
// and boots it under QEMU TCG as Nova would: a config drive with the
// server's UUID and cairn's user data, a data volume found by serial, the
// API and NBD ports forwarded. It drives the appliance from the host with
// the karbor CLI, hot-plugs a volume with a Cinder-like serial and protects
// it, reads the checkpoint over NBD, powers off through ACPI, then boots a
// new root disk with the same data volume (an image update) and restores.
func TestApplianceImage(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under TCG")
	}
	requireImageTools(t)
	karbor := requireKarbor(t)
	dir := t.TempDir()
	img := buildApplianceImage(t, dir, "cairn-appliance.qcow2")
	// The "new" image of the update: another build, with a larger root
	// file system, so that its disk differs from the old one's.
	newImg := buildApplianceImage(t, dir, "cairn-appliance-new.qcow2", "CAIRN_IMAGE_ROOT_MIB=1900")

	const (
		serverID   = "5b8f5a4e-2c43-4d0c-9d4e-0c1a7e6f3b21"
		dataVolID  = "0e3c1d7a-6a52-4a8e-b1f4-79d0c2a1e5aa" // the data volume
		attachedID = "7d1f0c2b-9e4a-4f6d-8c3b-2a5e6f7a8b9c" // the volume to protect
		password   = "repository-passphrase-7c1e"
		project    = "demo"
	)
	ud, _ := json.Marshal(map[string]any{
		"config":              map[string]any{"default_project": project, "min_interval": "60s"},
		"data_volume":         dataVolID,
		"nbd_project":         project,
		"repository_password": password,
	})
	drive := configDrive(t, dir, serverID, ud)
	data := filepath.Join(dir, "data.raw")
	if err := os.Truncate(createEmpty(t, data), 512*mib); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "attached.raw")
	writeRandomFile(t, vol, 11, 24*mib+4096)
	want, err := os.ReadFile(vol)
	if err != nil {
		t.Fatal(err)
	}
	attachedPath := "/dev/cairn-volumes/" + attachedID[:20]

	// Boot 1: the "old" image.
	start := time.Now()
	v1 := bootVM(t, dir, "boot1", img, drive, data, dataVolID[:20])
	h := v1.waitHealthz(10 * time.Minute)
	t.Logf("boot to /healthz: %s", time.Since(start).Round(time.Second))
	if h["status"] != "ok" || h["server_id"] != serverID {
		t.Fatalf("/healthz %v: want status ok and server_id %s from meta_data.json", h, serverID)
	}
	a := &appliance{t: t, addr: fmt.Sprintf("127.0.0.1:%d", v1.api), done: make(chan struct{}),
		stderr: &lockedBuffer{}, client: &http.Client{Timeout: time.Minute}}
	k := karborCLI{t: t, bin: karbor, a: a, project: project}
	if got := column(k.table("provider-list"), "Id"); !slices.Contains(got, karborProvider) {
		t.Fatalf("karbor provider-list: %v, want %s", got, karborProvider)
	}
	if got := column(k.table("protectable-list"), "Protectable type"); !slices.Contains(got, fileType) {
		t.Fatalf("karbor protectable-list: %v, want %s", got, fileType)
	}

	// Hot-plug a volume as Nova attaches a Cinder volume: its serial is
	// the volume ID.
	v1.hmp("drive_add 0 if=none,id=vol1,format=raw,file=" + vol)
	if out := v1.hmp("device_add virtio-blk-pci,drive=vol1,id=vol1dev,serial=" + attachedID); out != "" {
		t.Fatalf("device_add: %s", out)
	}
	resID := waitInstance(t, a, project, attachedPath, 2*time.Minute)
	plan := a.createFilePlan(project, "attached", attachedPath)
	cp := a.createCheckpoint(project, plan)
	c := a.waitCheckpoint(project, cp)
	res, _ := c["resources"].([]any)
	if c["status"] != "available" || len(res) != 1 {
		t.Fatalf("checkpoint of the attached volume: %v", c)
	}
	backup, _ := res[0].(map[string]any)["backup_id"].(string)

	// The checkpoint's backup over NBD from the host (cairn-nbd.service):
	// the export is named by the repository's backup ID.
	uri := fmt.Sprintf("nbd://127.0.0.1:%d/%s", v1.nbd, backup)
	waitNBD(t, v1, uri, time.Minute)
	if out, err := exec.Command("nbdinfo", "--size", uri).Output(); err != nil || strings.TrimSpace(string(out)) != fmt.Sprint(len(want)) {
		t.Fatalf("nbdinfo --size %s: %q, %v; want %d", uri, out, err, len(want))
	}
	fromNBD := filepath.Join(dir, "from-nbd.raw")
	if out, err := exec.Command("nbdcopy", uri, fromNBD).CombinedOutput(); err != nil {
		t.Fatalf("nbdcopy %s: %v\n%s", uri, err, out)
	}
	if got, _ := os.ReadFile(fromNBD); !bytes.Equal(got, want) {
		t.Fatalf("the checkpoint read over NBD differs from the volume (%d bytes, want %d)", len(got), len(want))
	}

	took := v1.powerOff(3 * time.Minute)
	t.Logf("ACPI power-off to QEMU exit: %s", took.Round(time.Second))
	checkCleanStop(t, v1)

	// Boot 2: the new image on a new root disk, with the same data volume.
	v2 := bootVM(t, dir, "boot2", newImg, drive, data, dataVolID[:20])
	v2.waitHealthz(10 * time.Minute)
	a.addr = fmt.Sprintf("127.0.0.1:%d", v2.api)
	if c := a.ok(200, project, "GET", "/providers/"+karborProvider+"/checkpoints/"+cp, nil).obj(t, "checkpoint"); c["status"] != "available" {
		t.Fatalf("after the update, checkpoint %s: %v", cp, c)
	}
	a.restoreFiles(project, cp, map[string]string{resID: "/var/lib/cairn/restores/attached.raw"})
	v2.powerOff(3 * time.Minute)
	checkCleanStop(t, v2)
	restored := filepath.Join(dir, "restored.raw")
	if out, err := exec.Command("debugfs", "-R", "dump /restores/attached.raw "+restored, data).CombinedOutput(); err != nil {
		t.Fatalf("debugfs dump: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(restored); !bytes.Equal(got, want) {
		t.Fatalf("the restore on the data volume differs from the volume (%d bytes, want %d)", len(got), len(want))
	}
	// Boot 3: a NoCloud drive with user data cairn cannot use. The
	// appliance must come up anyway and say why on /healthz.
	bad := noCloudDrive(t, filepath.Join(dir, "bad"), serverID, []byte(`{"confg": {}, "repository_password": "`+password+`"}`))
	v3 := bootVM(t, dir, "boot3", img, bad, data, dataVolID[:20])
	code, h := v3.waitHealthzCode(10 * time.Minute)
	if code != http.StatusServiceUnavailable || h["status"] != "degraded" || !strings.Contains(h["reason"], `"confg"`) || h["server_id"] != serverID {
		t.Fatalf("/healthz with bad user data: %d %v, want 503 degraded naming the unknown key \"confg\" and server_id %s", code, h, serverID)
	}
	v3.powerOff(3 * time.Minute)

	for _, v := range []*vm{v1, v2, v3} {
		if strings.Contains(v.consoleText(), password) {
			t.Errorf("the repository password appears on the console of %s", v.console)
		}
	}
}

func createEmpty(t *testing.T, path string) string {
	t.Helper()
	writeFile(t, path, nil)
	return path
}

// waitInstance polls the file plugin's instances until path is one and
// returns its ID.
func waitInstance(t *testing.T, a *appliance, project, path string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := a.ok(200, project, "GET", "/protectables/"+fileType+"/instances", nil)
		for _, in := range r.list(t, "instances") {
			if in["name"] == path {
				return in["id"].(string)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hot-plugged volume never became protectable as %s: %s", path, r)
		}
		time.Sleep(2 * time.Second)
	}
}

// waitNBD waits for the NBD server to list the export of uri: cairn-nbd
// starts again every few seconds until the project's repository exists.
func waitNBD(t *testing.T, v *vm, uri string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out, err := exec.Command("nbdinfo", "--list", uri).CombinedOutput()
		if err == nil && strings.Contains(string(out), uri[strings.LastIndexByte(uri, '/')+1:]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nbdinfo --list %s: %v\n%s\nconsole: %s", uri, err, out, clip(v.consoleText()))
		}
		time.Sleep(2 * time.Second)
	}
}

// checkCleanStop requires that cairn serve logged its clean stop on the
// console (StandardError=journal+console) and that systemd did not have to
// kill it.
func checkCleanStop(t *testing.T, v *vm) {
	t.Helper()
	c := v.consoleText()
	if !strings.Contains(c, `"msg":"stopped"`) {
		t.Errorf("cairn serve did not log a clean stop on power-off\nconsole: %s", clip(c))
	}
	for _, bad := range []string{"cairn.service: State 'stop-sigterm' timed out", "cairn.service: Failed with result"} {
		if strings.Contains(c, bad) {
			t.Errorf("console: %q", bad)
		}
	}
}
