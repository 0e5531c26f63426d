package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nbdServer is a running `cairn nbd serve`.
type nbdServer struct {
	t      *testing.T
	cmd    *exec.Cmd
	cancel context.CancelFunc
	addr   string // HOST:PORT, or the socket path
	done   chan error
	mu     sync.Mutex
	stderr bytes.Buffer
	exited bool
}

// nbdStderr lets the server's stderr be read while it is written.
type nbdStderr struct{ s *nbdServer }

func (w nbdStderr) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

func (s *nbdServer) stderrText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// startNBD starts `cairn nbd serve --listen LISTEN ARGS...` and waits for
// it to print where it listens. listen "" means 127.0.0.1 on a free port.
// The server is stopped when the test ends.
func (e *env) startNBD(listen string, args ...string) *nbdServer {
	e.t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	cmd := e.command(ctx, append([]string{"nbd", "serve", "--listen", listen}, args...)...)
	s := &nbdServer{t: e.t, cmd: cmd, cancel: cancel, done: make(chan error, 1)}
	cmd.Stderr = nbdStderr{s}
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		lines <- line
		io.Copy(io.Discard, br)
		s.done <- cmd.Wait()
	}()
	e.t.Cleanup(s.stop)
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			e.t.Fatalf("cairn nbd serve printed %q first\nstderr: %s", line, s.stderrText())
		}
		s.addr, _, _ = strings.Cut(addr, " ")
	case <-time.After(time.Minute):
		e.t.Fatalf("cairn nbd serve did not start within a minute\nstderr: %s", s.stderrText())
	}
	return s
}

// uri is the NBD URI of export name on this server.
func (s *nbdServer) uri(name string) string {
	if strings.HasPrefix(s.addr, "/") {
		return "nbd+unix:///" + name + "?socket=" + s.addr
	}
	return "nbd://" + s.addr + "/" + name
}

// stop sends SIGTERM and expects a clean exit within 20 s.
func (s *nbdServer) stop() {
	s.t.Helper()
	if s.exited {
		return
	}
	s.exited = true
	defer s.cancel()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("cairn nbd serve exited with %v\nstderr: %s", err, s.stderrText())
		}
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("cairn nbd serve did not stop within 20 s of SIGTERM\nstderr: %s", s.stderrText())
	}
}

// requireNBDTool is requireTool naming the Debian package to install.
func requireNBDTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatalf("%s is required (CAIRN_REQUIRE_ALL=1) but not found: install %s", name, pkg)
		}
		t.Skipf("%s not found; install %s (scripts/install-test-deps.sh) or set CAIRN_REQUIRE_ALL=1 to make this fatal", name, pkg)
	}
}

// nbdTool runs an outside program and returns its combined output and error.
func nbdTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out\n%s", name, strings.Join(args, " "), out)
	}
	return string(out), err
}

// mustNBDTool runs a program and fails the test unless it succeeds.
func mustNBDTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := nbdTool(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, clip(out))
	}
	return out
}

// nbdSparseImage writes a size-byte image of random data with a hole of
// holeLen bytes at holeOff that is never written (so it is sparse), and
// returns its path and SHA-256.
func nbdSparseImage(t *testing.T, dir string, size, holeOff, holeLen int64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, "sparse.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(randomBytes(11, int(holeOff)), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(randomBytes(12, int(size-holeOff-holeLen)), holeOff+holeLen); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, fileHash(t, path)
}

// nbdQemuIO runs one qemu-io command against an NBD URI.
func nbdQemuIO(t *testing.T, uri, command string) (string, error) {
	t.Helper()
	out, err := nbdTool(t, "qemu-io", "-f", "raw", "-c", command, uri)
	if err == nil && strings.Contains(out, "failed") {
		err = errors.New("qemu-io reported a failure")
	}
	return out, err
}
