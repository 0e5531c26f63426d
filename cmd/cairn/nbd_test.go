package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn/mount/nbd"
)

func TestCLINBDUsage(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, env: map[string]string{}}
	c.fail(exitUsage, "--tls-required needs --tls-cert", "--repo", dir, "nbd", "serve", "--tls-required")
	c.fail(exitUsage, "tls-key", "--repo", dir, "nbd", "serve", "--tls-cert", "c.pem")
	c.fail(exitUsage, "--idle-timeout -1s: want a duration of 0 or more", "--repo", dir, "nbd", "serve", "--idle-timeout", "-1s")
	c.fail(exitUsage, "accepts 1 arg", "--repo", dir, "nbd", "discard")
	c.fail(exitUsage, "unknown command", "nbd", "bogus")
	c.fail(exitUsage, "--overlay-dir is required", "--repo", filepath.Join(dir, "missing"), "nbd", "discard", "x")
	short := filepath.Join(dir, "secret")
	os.WriteFile(short, []byte("short\n"), 0o600)
	c.fail(exitFailure, "at least 16 characters", "--repo", dir, "nbd", "serve", "--secret-file", short)

	overlays := filepath.Join(dir, "overlays")
	os.MkdirAll(overlays, 0o700)
	for _, id := range []string{"0197aa-1", "0197aa-2", "0198bb-1"} {
		os.WriteFile(filepath.Join(overlays, id+".overlay"), nil, 0o600)
	}
	c.fail(exitFailure, "matches 2 overlays", "--repo", dir, "nbd", "discard", "0197aa")
	c.fail(exitFailure, "no overlay", "--repo", dir, "nbd", "discard", "0199")
	if r := c.ok("--repo", dir, "nbd", "discard", "0198"); !strings.Contains(r.stdout, "0198bb-1") {
		t.Errorf("discard printed %q", r.stdout)
	}
	if ids, _ := nbd.Overlays(overlays); len(ids) != 2 {
		t.Errorf("overlays left: %v", ids)
	}
}

func TestNBDURI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, want := nbdURI(l, "/src/a b/ID", true), "nbds://"+l.Addr().String()+"//src/a%20b/ID"; got != want {
		t.Errorf("nbdURI = %q, want %q", got, want)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	u, err := nbdListen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if got := nbdURI(u, "ID", false); got != "nbd+unix:///ID?socket="+sock {
		t.Errorf("unix nbdURI = %q", got)
	}
	if _, err := nbdListen("unix:" + sock); err == nil {
		t.Error("listened twice on one socket")
	}
	u.(*net.UnixListener).SetUnlinkOnClose(false)
	u.Close()
	u, err = nbdListen("unix:" + sock) // stale socket file: replaced
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	u.Close()
}

// syncBuffer is a bytes.Buffer safe to read while cairn writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLINBDServe serves a checkpoint in process and stops on cancel, as
// on SIGINT.
func TestCLINBDServe(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": filepath.Join(dir, "repo")}}
	c.ok("repo", "init", "--block-size", "64KiB")
	src := filepath.Join(dir, "vol.img")
	writeSparse(t, src, 1)
	c.ok("backup", "--source", src)

	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--no-sync", "nbd", "serve", "--listen", "127.0.0.1:0", "--writable"},
			strings.NewReader(""), &out, &errb, func(k string) string { return c.env[k] })
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "nbd://") {
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no export:\nstdout: %s\nstderr: %s", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	addr, ok := strings.CutPrefix(first, "listening on ")
	if !ok || !strings.Contains(first, "writable") {
		t.Fatalf("serve printed %q", out.String())
	}
	addr, _, _ = strings.Cut(addr, " ")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	greeting := make([]byte, 18)
	if _, err := io.ReadFull(conn, greeting); err != nil || string(greeting[:8]) != "NBDMAGIC" {
		t.Fatalf("greeting %q: %v", greeting, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("serve exited %d after cancel\nstderr: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}
