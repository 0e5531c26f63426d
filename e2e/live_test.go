package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// liveRun is a running `cairn restore --live`.
type liveRun struct {
	t      *testing.T
	cancel context.CancelFunc
	pid    int
	addr   string
	lines  chan string // stdout, line by line; closed at exit
	done   chan error  // the exit, once
	stderr *lockedBuffer
}

// startLive starts `cairn restore --live ID --to TARGET --listen
// 127.0.0.1:0 ARGS...`. Unless --json is among args, it waits for the
// "listening on" line. The process is killed when the test ends.
func (e *env) startLive(id, target string, args ...string) *liveRun {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	cmd := e.command(ctx, append([]string{"restore", "--live", id, "--to", target, "--listen", "127.0.0.1:0"}, args...)...)
	r := &liveRun{t: e.t, cancel: cancel, lines: make(chan string, 64), done: make(chan error, 1), stderr: &lockedBuffer{}}
	cmd.Stderr = r.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	r.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		r.done <- cmd.Wait()
	}()
	e.t.Cleanup(func() {
		syscall.Kill(r.pid, syscall.SIGKILL)
		cancel()
	})
	if !strings.Contains(strings.Join(args, " "), "--json") {
		line := r.waitLine("listening on ")
		r.addr, _, _ = strings.Cut(strings.TrimPrefix(line, "listening on "), " ")
	}
	return r
}

// waitLine returns the first (further) stdout line starting with prefix.
func (r *liveRun) waitLine(prefix string) string {
	r.t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				r.t.Fatalf("cairn restore --live exited before printing %q\nstderr: %s", prefix, r.stderr)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			r.t.Fatalf("cairn restore --live printed no %q within 2 minutes\nstderr: %s", prefix, r.stderr)
		}
	}
}

// wait waits for the exit, after sending sig unless it is 0.
func (r *liveRun) wait(sig syscall.Signal) error {
	r.t.Helper()
	if sig != 0 {
		syscall.Kill(r.pid, sig)
	}
	for range r.lines {
	}
	select {
	case err := <-r.done:
		return err
	case <-time.After(time.Minute):
		r.t.Fatalf("cairn restore --live did not exit within a minute\nstderr: %s", r.stderr)
		return nil
	}
}

// TestLiveRestore serves a checkpoint while it is restored: a client
// reads it at once, writes through it, and the finished target holds the
// checkpoint with the write.
func TestLiveRestore(t *testing.T) {
	requireNBDTool(t, "qemu-img", "qemu-utils")
	requireNBDTool(t, "qemu-io", "qemu-utils")
	e := newRepo(t, repoOpts{})
	src, hash := nbdSparseImage(t, e.scratch, 32*mib, 8*mib, 8*mib)
	cp := e.backup(src)
	target := filepath.Join(e.scratch, "live.img")

	r := e.startLive(cp.ID, target)
	uri := "nbd://" + r.addr + "/" + cp.ID
	conv := filepath.Join(e.scratch, "convert.raw")
	mustNBDTool(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", uri, conv)
	if got := fileHash(t, conv); got != hash {
		t.Fatalf("qemu-img convert during the live restore: sha256 %s, want %s", got, hash)
	}
	if out, err := nbdQemuIO(t, uri, "write -P 0xcd 1M 64k"); err != nil {
		t.Fatalf("qemu-io write: %v\n%s", err, out)
	}
	if out, err := nbdQemuIO(t, "nbd://"+r.addr, "read -P 0xcd 1M 64k"); err != nil {
		t.Fatalf("qemu-io read back by the default name: %v\n%s", err, out)
	}
	line := r.waitLine("target complete: ")
	if !strings.Contains(line, target) || !strings.Contains(line, cp.ID) {
		t.Errorf("completion line %q names neither %s nor %s", line, target, cp.ID)
	}
	if err := r.wait(syscall.SIGTERM); err != nil {
		t.Fatalf("cairn restore --live exited with %v after completion\nstderr: %s", err, r.stderr)
	}

	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	copy(want[mib:], bytes.Repeat([]byte{0xcd}, 64<<10))
	if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("target is not the checkpoint with the write applied (%v)", err)
	}
	if _, err := os.Stat(target + ".cairn-live"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after completion: %v", err)
	}
	e.must("verify", "--deep")
	e.checkRestore(cp.ID, hash, "after a live restore")
}

// TestLiveRestoreResume kills a live restore and reruns the same command,
// which finishes the target (--json, --exit-when-complete).
func TestLiveRestoreResume(t *testing.T) {
	e := newRepo(t, repoOpts{})
	src, hash := nbdSparseImage(t, e.scratch, 32*mib, 4*mib, 4*mib)
	cp := e.backup(src)
	target := filepath.Join(e.scratch, "live.img")

	r := e.startLive(cp.ID, target, "--force")
	if err := r.wait(syscall.SIGKILL); err == nil {
		t.Fatal("cairn restore --live survived SIGKILL")
	}
	if _, err := os.Stat(target + ".cairn-live"); err != nil {
		t.Fatalf("no state file after a kill: %v", err)
	}
	r = e.startLive(cp.ID, target, "--force", "--json", "--exit-when-complete")
	var out strings.Builder
	for line := range r.lines {
		out.WriteString(line + "\n")
	}
	if err := r.wait(0); err != nil {
		t.Fatalf("resumed live restore: %v\nstderr: %s", err, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	var start, done map[string]any
	if err := dec.Decode(&start); err != nil || dec.Decode(&done) != nil {
		t.Fatalf("--json printed no start and end objects: %v\n%s", err, out.String())
	}
	if start["resumed"] != true || done["complete"] != true || done["id"] != cp.ID {
		t.Fatalf("--json objects: %v, %v", start, done)
	}
	if got := fileHash(t, target); got != hash {
		t.Fatalf("resumed target: sha256 %s, want %s", got, hash)
	}
}
