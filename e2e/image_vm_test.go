package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Helpers of image_test.go: the appliance image built by image/build.sh,
// booted under QEMU (TCG) with a config drive, a data volume and host
// forwards for the API and NBD ports, driven through its HMP monitor.

// requireImageTools skips the test when what building and booting the image
// needs is missing (fails it under CAIRN_REQUIRE_ALL=1).
func requireImageTools(t *testing.T) {
	t.Helper()
	var why string
	if os.Getuid() != 0 {
		why = "building the image needs root (mmdebstrap --mode=root)"
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "mmdebstrap", "grub-mkimage", "genisoimage", "debugfs", "nbdinfo", "nbdcopy", "sfdisk"} {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = tool + " not found (make deps installs it)"
		}
	}
	if _, err := os.Stat("/usr/lib/grub/i386-pc/boot.img"); err != nil && why == "" {
		why = "grub-pc-bin is not installed"
	}
	if why == "" {
		return
	}
	if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
		t.Fatalf("the appliance image test is required (CAIRN_REQUIRE_ALL=1): %s", why)
	}
	t.Skipf("%s; set CAIRN_REQUIRE_ALL=1 to make this fatal", why)
}

// buildApplianceImage runs image/build.sh on the e2e binary into dir and
// returns the qcow2's path. Its caches make a second run a copy.
func buildApplianceImage(t *testing.T, dir, name string, env ...string) string {
	t.Helper()
	root := repoRoot(t)
	img := filepath.Join(dir, name)
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "image", "build.sh"), cairnBin, img)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("image/build.sh: %v\n%s", err, clip(string(b)))
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image built in %s, %.1f MiB: %s", time.Since(start).Round(time.Second), float64(fi.Size())/(1<<20), lastLine(string(b)))
	return img
}

// repoRoot is the checkout's root, where image/ and scripts/ are.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// configDrive writes an OpenStack config drive (ISO 9660, label config-2)
// holding meta_data.json with serverID and userData.
func configDrive(t *testing.T, dir, serverID string, userData []byte) string {
	t.Helper()
	src := filepath.Join(dir, "config-drive")
	latest := filepath.Join(src, "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]any{"uuid": serverID, "name": "cairn-e2e", "hostname": "cairn-e2e"})
	writeFile(t, filepath.Join(latest, "meta_data.json"), md)
	writeFile(t, filepath.Join(latest, "user_data"), userData)
	iso := filepath.Join(dir, "config-drive.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-o", iso, "-V", "config-2", "-r", "-J", src).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

// noCloudDrive writes a NoCloud drive (ISO 9660, label cidata) with
// meta-data naming serverID and userData.
func noCloudDrive(t *testing.T, dir, serverID string, userData []byte) string {
	t.Helper()
	src := filepath.Join(dir, "cidata")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "meta-data"), []byte("instance-id: "+serverID+"\nlocal-hostname: cairn\n"))
	writeFile(t, filepath.Join(src, "user-data"), userData)
	iso := filepath.Join(dir, "cidata.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-o", iso, "-V", "cidata", "-r", "-J", src).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// vm is one boot of the appliance image.
type vm struct {
	t                *testing.T
	cmd              *exec.Cmd
	done             chan struct{}
	err              error
	monitor, console string
	api, nbd         int // host ports forwarded to 8799 and 10809
}

// bootVM boots base through a fresh qcow2 overlay (the server's root disk)
// with the config drive and the data volume (serial dataSerial).
func bootVM(t *testing.T, dir, name, base, drive, data, dataSerial string) *vm {
	t.Helper()
	root := filepath.Join(dir, name+".qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, root).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	v := &vm{t: t, done: make(chan struct{}), monitor: filepath.Join(dir, name+".mon"),
		console: filepath.Join(dir, name+".console"), api: freePort(t), nbd: freePort(t)}
	// A VGA card stays (as on Nova): without one, GRUB's console
	// output blocks the boot.
	v.cmd = exec.Command("qemu-system-x86_64", "-display", "none", "-nic", "none", "-no-reboot",
		"-accel", "tcg,tb-size=128", "-m", "1024", "-smp", "2",
		"-serial", "file:"+v.console, "-monitor", "unix:"+v.monitor+",server=on,wait=off",
		"-drive", "file="+root+",if=none,id=root,format=qcow2",
		"-device", "virtio-blk-pci,drive=root,bootindex=0",
		"-drive", "file="+drive+",if=virtio,format=raw,readonly=on",
		"-drive", "file="+data+",if=none,id=data,format=raw",
		"-device", "virtio-blk-pci,drive=data,serial="+dataSerial,
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:8799,hostfwd=tcp:127.0.0.1:%d-:10809", v.api, v.nbd),
		"-device", "virtio-net-pci,netdev=n0")
	var stderr bytes.Buffer
	v.cmd.Stderr = &stderr
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	go func() { v.err = v.cmd.Wait(); close(v.done) }()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			_ = v.cmd.Process.Kill()
			<-v.done
		}
	})
	return v
}

func (v *vm) consoleText() string {
	b, _ := os.ReadFile(v.console)
	return string(b)
}

func (v *vm) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// waitHealthz polls /healthz until it answers 200 and returns its body.
func (v *vm) waitHealthz(limit time.Duration) map[string]string {
	v.t.Helper()
	code, h := v.waitHealthzCode(limit)
	if code != http.StatusOK {
		v.t.Fatalf("appliance: /healthz %d %v, want 200\nconsole: %s", code, h, clip(v.consoleText()))
	}
	return h
}

// waitHealthzCode polls /healthz until it answers a JSON body and returns
// the status code and the body.
func (v *vm) waitHealthzCode(limit time.Duration) (int, map[string]string) {
	v.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	for {
		var h map[string]string
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", v.api))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err == nil {
				return resp.StatusCode, h
			}
		}
		if v.exited() || time.Now().After(deadline) {
			v.t.Fatalf("appliance: no /healthz within %s (%v; qemu exited: %v)\nconsole: %s", limit, err, v.exited(), clip(v.consoleText()))
		}
		time.Sleep(time.Second)
	}
}

// hmp runs one command on the QEMU monitor and returns its output.
func (v *vm) hmp(command string) string {
	v.t.Helper()
	conn, err := net.Dial("unix", v.monitor)
	if err != nil {
		v.t.Fatalf("qemu monitor: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	untilPrompt := func() string {
		var sb strings.Builder
		for !strings.HasSuffix(sb.String(), "(qemu) ") {
			b, err := r.ReadByte()
			if err != nil {
				v.t.Fatalf("qemu monitor, %q: %v (read %q)", command, err, sb.String())
			}
			sb.WriteByte(b)
		}
		return sb.String()
	}
	untilPrompt()
	if _, err := conn.Write([]byte(command + "\n")); err != nil {
		v.t.Fatalf("qemu monitor: %v", err)
	}
	out := strings.TrimSuffix(untilPrompt(), "(qemu) ")
	// The monitor echoes the command line (with terminal escapes) first.
	if i := strings.IndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	return strings.TrimSpace(out)
}

// powerOff presses the ACPI power button, as Nova's stop does, and waits
// for QEMU to exit (the guest powered itself off) within limit.
func (v *vm) powerOff(limit time.Duration) time.Duration {
	v.t.Helper()
	start := time.Now()
	v.hmp("system_powerdown")
	select {
	case <-v.done:
	case <-time.After(limit):
		v.t.Fatalf("appliance still running %s after an ACPI power-off\nconsole: %s", limit, clip(v.consoleText()))
	}
	return time.Since(start)
}
