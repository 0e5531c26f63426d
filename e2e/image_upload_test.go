package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn/internal/openstack/ostest"
)

// TestApplianceImageUpload uploads the built image to the test cloud's
// Glance with image/upload.sh, the command docs/appliance.md gives the
// operator, and checks that Glance holds all of it with the properties
// Nova needs to boot it (virtio disk, minimum disk and RAM).
func TestApplianceImageUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the appliance image")
	}
	ostest.Env(t)
	requireImageTools(t)
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the openstack client is missing (make deps installs python3-openstackclient)")
	}
	dir := t.TempDir()
	img := buildApplianceImage(t, dir, "cairn-appliance.qcow2")
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	name := "cairn-appliance-e2e-" + filepath.Base(dir)
	root := repoRoot(t)
	upload := exec.Command(filepath.Join(root, "image", "upload.sh"), img, name)
	if out, err := upload.CombinedOutput(); err != nil {
		t.Fatalf("image/upload.sh: %v\n%s", err, clip(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("openstack", "image", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("delete image %s: %v\n%s", name, err, out)
		}
	})
	out, err := exec.Command("openstack", "image", "show", name, "-f", "json").Output()
	if err != nil {
		t.Fatalf("openstack image show %s: %v", name, err)
	}
	var got struct {
		Status          string         `json:"status"`
		Size            int64          `json:"size"`
		DiskFormat      string         `json:"disk_format"`
		ContainerFormat string         `json:"container_format"`
		MinDisk         int            `json:"min_disk"`
		MinRAM          int            `json:"min_ram"`
		Properties      map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if got.Status != "active" || got.Size != fi.Size() {
		t.Errorf("Glance holds %s, %d bytes; want active, %d bytes (the built qcow2)", got.Status, got.Size, fi.Size())
	}
	if got.DiskFormat != "qcow2" || got.ContainerFormat != "bare" || got.MinDisk < 2 || got.MinRAM < 1024 {
		t.Errorf("image %s: disk_format %q container_format %q min_disk %d min_ram %d; want qcow2, bare, at least 2 GiB and 1024 MiB",
			name, got.DiskFormat, got.ContainerFormat, got.MinDisk, got.MinRAM)
	}
	for k, want := range map[string]string{"hw_disk_bus": "virtio", "hw_vif_model": "virtio", "hw_qemu_guest_agent": "yes", "os_distro": "debian"} {
		if v, _ := got.Properties[k].(string); !strings.EqualFold(v, want) {
			t.Errorf("property %s = %v, want %s", k, got.Properties[k], want)
		}
	}
}
