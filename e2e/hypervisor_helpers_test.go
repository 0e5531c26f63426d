//go:build ceph

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cairn/internal/openstack"
)

// fakeHypervisor stands in for the hypervisor of one server of the test
// cloud. Nova's fake driver attaches nothing: a volume attached to the
// server is in-use in Cinder, but no disk appears in any guest. The fake
// hypervisor watches Cinder and, for each volume attached to the server,
// does what QEMU and the guest's udev would: it exports the volume's RBD
// image with qemu-storage-daemon (a FUSE export: a file with the image's
// bytes), puts a loop device on that file and links it as
// virtio-<first 20 characters of the volume ID> in the device directory.
// When the volume is no longer attached it takes that down again, the
// link last (so that a link gone means the image is closed).
type fakeHypervisor struct {
	t                    *testing.T
	cin                  *openstack.Cinder
	server, devDir, work string
	cephConf             string
	cancel               context.CancelFunc
	done                 chan struct{}
	mu                   sync.Mutex
	disks                map[string]*fakeDisk // by volume ID
	seen                 []string             // volumes given a disk, in order
	errs                 []error
}

type fakeDisk struct {
	qsd                *exec.Cmd
	export, loop, link string
}

// startHypervisor starts the fake hypervisor of server; it stops (and
// takes every disk down) when the test ends, and fails the test if it
// could not give an attached volume its disk.
func startHypervisor(t *testing.T, c *cinderT, server, devDir string) *fakeHypervisor {
	t.Helper()
	requireTool(t, "qemu-storage-daemon")
	requireTool(t, "losetup")
	ctx, cancel := context.WithCancel(context.Background())
	h := &fakeHypervisor{t: t, cin: c.cin, server: server, devDir: devDir, work: t.TempDir(), cephConf: c.env["CEPH_CONF"],
		cancel: cancel, done: make(chan struct{}), disks: map[string]*fakeDisk{}}
	// The server's own disks (its root volume) are attached already: the
	// guest has them; only volumes attached later are hot-plugged.
	own := map[string]bool{}
	vs, err := c.cin.Volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		for _, a := range v.Attachments {
			own[v.ID] = own[v.ID] || a.ServerID == server
		}
	}
	go h.run(ctx, own)
	t.Cleanup(func() {
		h.cancel()
		<-h.done
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, err := range h.errs {
			t.Errorf("fake hypervisor: %v", err)
		}
	})
	return h
}

func (h *fakeHypervisor) run(ctx context.Context, own map[string]bool) {
	defer close(h.done)
	defer func() {
		for id := range h.disks {
			h.unplug(id)
		}
	}()
	for {
		vs, err := h.cin.Volumes(ctx)
		if err == nil {
			attached := map[string]bool{}
			for _, v := range vs {
				for _, a := range v.Attachments {
					if a.ServerID == h.server && !own[v.ID] {
						attached[v.ID] = true
					}
				}
			}
			for id := range attached {
				if h.disks[id] == nil {
					h.plug(ctx, id)
				}
			}
			for id := range h.disks {
				if !attached[id] {
					h.unplug(id)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (h *fakeHypervisor) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

// plug gives volume id its disk.
func (h *fakeHypervisor) plug(ctx context.Context, id string) {
	d := &fakeDisk{export: filepath.Join(h.work, id), link: filepath.Join(h.devDir, "virtio-"+id[:20])}
	h.disks[id] = d
	if err := os.WriteFile(d.export, nil, 0o600); err != nil {
		h.fail(err)
		return
	}
	d.qsd = exec.Command("qemu-storage-daemon",
		"--blockdev", fmt.Sprintf("driver=rbd,pool=volumes,image=volume-%s,conf=%s,node-name=disk", id, h.cephConf),
		"--export", fmt.Sprintf("type=fuse,id=export,node-name=disk,mountpoint=%s,writable=on", d.export))
	var stderr strings.Builder
	d.qsd.Stderr = &stderr
	if err := d.qsd.Start(); err != nil {
		h.fail(fmt.Errorf("qemu-storage-daemon for volume %s: %w", id, err))
		d.qsd = nil
		return
	}
	// The export is up when the file has the image's size.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if fi, err := os.Stat(d.export); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			h.fail(fmt.Errorf("qemu-storage-daemon did not export volume %s: %s", id, stderr.String()))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command("losetup", "-f", "--show", d.export).CombinedOutput()
	if err != nil {
		h.fail(fmt.Errorf("losetup of volume %s's export: %v: %s", id, err, out))
		return
	}
	d.loop = strings.TrimSpace(string(out))
	if err := os.Symlink(d.loop, d.link); err != nil {
		h.fail(err)
		return
	}
	h.mu.Lock()
	h.seen = append(h.seen, id)
	h.mu.Unlock()
}

// unplug takes volume id's disk down: loop device, export, then link.
func (h *fakeHypervisor) unplug(id string) {
	d := h.disks[id]
	delete(h.disks, id)
	if d.loop != "" {
		if out, err := exec.Command("losetup", "-d", d.loop).CombinedOutput(); err != nil {
			h.fail(fmt.Errorf("losetup -d %s (volume %s): %v: %s", d.loop, id, err, out))
		}
	}
	if d.qsd != nil {
		_ = d.qsd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() { exited <- d.qsd.Wait() }()
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				h.fail(fmt.Errorf("qemu-storage-daemon of volume %s: %w", id, err))
			}
		case <-time.After(30 * time.Second):
			_ = d.qsd.Process.Kill()
			<-exited
			h.fail(fmt.Errorf("qemu-storage-daemon of volume %s still running 30s after SIGTERM", id))
		}
	}
	_ = os.Remove(d.export)
	_ = os.Remove(d.link)
}

// report says what the fake hypervisor did so far, for a failure message:
// a restore stuck waiting for its device is explained by a plug that
// failed, which the test otherwise reports only when it ends.
func (h *fakeHypervisor) report() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("disks given to %v, errors %v", h.seen, h.errs)
}

// attachedVolumes returns the volumes that were given a disk so far.
func (h *fakeHypervisor) attachedVolumes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// applianceServer boots a server to stand for the appliance's own VM
// (from a 1 GiB volume, fake driver: nothing runs), deleted when the
// test ends.
func applianceServer(t *testing.T, c *cinderT, name string) *openstack.Server {
	t.Helper()
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true, WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	nova, err := cloud.Nova(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	e2eFlavor(t, name+"-flavor")
	root := c.volume(name+"-root", 1, nil)
	if err := c.cin.SetBootable(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	fl, err := nova.FlavorByName(ctx, name+"-flavor")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := nova.CreateServer(ctx, openstack.ServerSpec{Name: name, FlavorID: fl.ID, RootVolume: root.ID})
	if srv != nil {
		t.Cleanup(func() { _ = nova.DeleteServer(context.Background(), srv.ID) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
