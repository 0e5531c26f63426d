package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers of the FUSE and `cairn files` tests (fuse_test.go,
// fuse_files_test.go).

// fuseRequire skips the test (fails it under CAIRN_REQUIRE_ALL=1) unless
// this machine can FUSE-mount and loop-mount: /dev/fuse, root, and the
// tools the test calls.
func fuseRequire(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "no /dev/fuse: " + err.Error()
	} else if os.Geteuid() != 0 {
		why = "not root (loop devices and mount need it)"
	}
	if why != "" {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatalf("FUSE tests are required (CAIRN_REQUIRE_ALL=1): %s", why)
		}
		t.Skipf("%s; set CAIRN_REQUIRE_ALL=1 to make this fatal", why)
	}
	for _, tool := range tools {
		requireTool(t, tool)
	}
}

// fuseDiskSize is the size of the partitioned test disks: a 64 MiB ext4
// partition starting at 1 MiB, with room for the backup GPT at the end.
const fuseDiskSize = 66 * mib

// fusePartitionedDisk creates a sparse disk image at img with one partition
// at 1 MiB (label "gpt" or "dos", written by sfdisk) holding an ext4 made
// from the directory root.
func fusePartitionedDisk(t *testing.T, img, label, root string) {
	t.Helper()
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(fuseDiskSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	typ := map[string]string{"gpt": "L", "dos": "83"}[label]
	sfdisk := exec.Command(requireTool(t, "sfdisk"), "-q", "--no-reread", "--no-tell-kernel", img)
	sfdisk.Stdin = strings.NewReader("label: " + label + "\nstart=2048, size=131072, type=" + typ + "\n")
	if out, err := sfdisk.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	fuseWriteExt4(t, img, root)
}

// fuseWriteExt4 builds an ext4 of root in a separate file and writes it
// into img's partition at 1 MiB, leaving the partition table alone.
func fuseWriteExt4(t *testing.T, img, root string) {
	t.Helper()
	fsImg := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command(requireTool(t, "mkfs.ext4"), "-q", "-F", "-d", root, fsImg, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	dd := exec.Command("dd", "if="+fsImg, "of="+img, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none")
	if out, err := dd.CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, out)
	}
}

// fuseTree writes files (path → content) under a new directory and
// returns it.
func fuseTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, data)
	}
	return root
}

// fuseMounted reports whether dir is a mount point, from mountinfo.
func fuseMounted(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// fuseServer is a `cairn mount` running in the background.
type fuseServer struct {
	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // of Wait, once done is closed
	stderr *lockedBuffer
}

// lockedBuffer is a bytes.Buffer written by one goroutine (exec's copier)
// and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fuseStart runs `cairn mount DIR` in the background on a new directory
// and returns once the mount is there. The test's cleanup stops it.
func fuseStart(t *testing.T, e *env) *fuseServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, _ = filepath.EvalSymlinks(dir)
	s := &fuseServer{dir: dir, done: make(chan struct{}), stderr: &lockedBuffer{}}
	s.cmd = e.command(context.Background(), "mount", dir)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for !fuseMounted(t, dir) {
		select {
		case <-s.done:
			t.Fatalf("cairn mount exited before mounting: %v\nstderr: %s", s.err, s.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("cairn mount did not mount %s within 30s\nstderr: %s", dir, s.stderr)
		}
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit: status 0, nothing left
// mounted. A server that hangs is killed and its mount detached.
func (s *fuseServer) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Errorf("cairn mount still running 30s after SIGTERM\nstderr: %s", s.stderr)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.err != nil {
		t.Errorf("cairn mount after SIGTERM: %v (want exit 0)\nstderr: %s", s.err, s.stderr)
	}
	if fuseMounted(t, s.dir) {
		t.Errorf("%s still mounted after cairn mount exited", s.dir)
		_ = exec.Command("fusermount3", "-u", "-z", s.dir).Run()
	}
}
