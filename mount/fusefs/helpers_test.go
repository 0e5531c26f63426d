package fusefs

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn/dedup"
	"cairn/dedup/deduptest"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// requireFUSE skips the test when there is no /dev/fuse, unless
// CAIRN_REQUIRE_ALL=1, which makes that a failure.
func requireFUSE(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/dev/fuse")
	if err == nil {
		return
	}
	if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
		t.Fatalf("FUSE is required (CAIRN_REQUIRE_ALL=1): %v", err)
	}
	t.Skipf("no FUSE here (%v); set CAIRN_REQUIRE_ALL=1 to make this fatal", err)
}

// clock is a settable time source for the repository.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// newRepo creates a repository with 64 KiB blocks whose clock the test sets.
func newRepo(t *testing.T) (*dedup.Repository, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)}
	r, err := dedup.Init(context.Background(), t.TempDir(), dedup.InitOptions{BlockSize: 64 * kib, PackSize: mib}, nil,
		dedup.Options{NoSync: true, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, c
}

func backup(t *testing.T, r *dedup.Repository, source string, data []byte) *dedup.Checkpoint {
	t.Helper()
	cp, err := r.Backup(context.Background(), deduptest.Source(source, data), dedup.BackupOptions{})
	if err != nil {
		t.Fatalf("backup %s: %v", source, err)
	}
	return cp
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// mbrDisk returns a disk image of size bytes of random data with an MBR
// listing the given partitions (start and length in bytes, 512-aligned).
func mbrDisk(seed uint64, size int, parts ...[2]int) []byte {
	img := randomBytes(seed, size)
	clear(img[:512])
	for i, p := range parts {
		e := img[446+16*i:]
		e[4] = 0x83
		binary.LittleEndian.PutUint32(e[8:], uint32(p[0]/512))
		binary.LittleEndian.PutUint32(e[12:], uint32(p[1]/512))
	}
	img[510], img[511] = 0x55, 0xaa
	return img
}

// mount mounts r on a fresh directory, unmounted when the test ends.
func mount(t *testing.T, r Repository, o Options) *Server {
	t.Helper()
	requireFUSE(t)
	if o.Log == nil {
		o.Log = t.Logf
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Mount(context.Background(), r, dir, o)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { unmount(t, s) })
	return s
}

// unmount unmounts s (once; later calls do nothing) and waits for it.
func unmount(t *testing.T, s *Server) {
	t.Helper()
	if _, ok := mountedAt(s.Dir()); !ok {
		return
	}
	var err error
	for range 50 {
		if err = s.Unmount(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("unmount: %v", err)
		_ = s.Detach()
	}
	s.Wait()
}

func TestLogWriterDropsOnlyDroppedReplies(t *testing.T) {
	var got []string
	w := logWriter{logf: func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) }}
	_, _ = w.Write([]byte("writer: Write/Writev failed, err: 2=no such file or directory. opcode: READ\n"))
	_, _ = w.Write([]byte("writer: Write/Writev failed, err: 5=input/output error. opcode: READ\n"))
	if len(got) != 1 || !strings.Contains(got[0], "input/output error") {
		t.Fatalf("logged %q, want only the I/O error", got)
	}
}
