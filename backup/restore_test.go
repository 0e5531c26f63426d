package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"cairn/blockdev"
	"cairn/dedup"
	"cairn/dedup/deduptest"
)

// recordingTarget is a Target that records how a restore ended.
type recordingTarget struct {
	*blockdev.FileTarget
	closed, aborted int
	closeErr        error
}

func (r *recordingTarget) Close() error {
	r.closed++
	if r.closeErr != nil {
		_ = r.FileTarget.Abort()
		return r.closeErr
	}
	return r.FileTarget.Close()
}

func (r *recordingTarget) Abort() error {
	r.aborted++
	return r.FileTarget.Abort()
}

// TestRestore: a restore completes its target only when every block is
// written, and otherwise gives it up, leaving no file behind.
func TestRestore(t *testing.T) {
	repo := deduptest.Repository(t)
	data := randomBytes(t, testSize)
	copy(data[4*testBlock:], make([]byte, 3*testBlock)) // a hole
	cp, err := repo.Backup(context.Background(), deduptest.Source("v", data), dedup.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errFlush := errors.New("flush failed")
	tests := []struct {
		name            string
		cancel          bool
		closeErr        error
		err             error
		closed, aborted int
		exists          bool
	}{
		{name: "complete", closed: 1, exists: true},
		{name: "cancelled", cancel: true, err: context.Canceled, aborted: 1},
		{name: "completion fails", closeErr: errFlush, err: errFlush, closed: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vol.img")
			ft, err := blockdev.CreateFileTarget(path, cp.Size, blockdev.TargetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tgt := &recordingTarget{FileTarget: ft, closeErr: tc.closeErr}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			var stages []string
			rep := Reporter{Stage: func(label string) Stage { stages = append(stages, label); return silent{} }}
			n, err := Restore(ctx, repo, cp, tgt, RestoreOptions{Report: rep})
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Restore = %v, want %v", err, tc.err)
			}
			if tgt.closed != tc.closed || tgt.aborted != tc.aborted {
				t.Errorf("closed %d aborted %d, want %d %d", tgt.closed, tgt.aborted, tc.closed, tc.aborted)
			}
			if len(stages) != 1 || stages[0] != "restore" {
				t.Errorf("stages %q, want one restore stage", stages)
			}
			got, rerr := os.ReadFile(path)
			if !tc.exists {
				if !os.IsNotExist(rerr) {
					t.Errorf("a failed restore left %s: %v", path, rerr)
				}
				ents, _ := os.ReadDir(filepath.Dir(path))
				if len(ents) != 0 {
					t.Errorf("a failed restore left %d files behind", len(ents))
				}
				return
			}
			if !bytes.Equal(got, data) {
				t.Error("restored bytes differ")
			}
			if n != testSize-3*testBlock {
				t.Errorf("wrote %d bytes, want only the data blocks (%d)", n, testSize-3*testBlock)
			}
		})
	}
}

// networkRecorder is a target over the network (an RBD image, say): it
// records the size of every write.
type networkRecorder struct {
	mu     sync.Mutex
	data   []byte
	writes []int
}

func (n *networkRecorder) OverNetwork() bool { return true }
func (n *networkRecorder) WriteAt(p []byte, off int64) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	copy(n.data[off:], p)
	n.writes = append(n.writes, len(p))
	return len(p), nil
}
func (n *networkRecorder) Zero(off, length int64) error { return nil }
func (n *networkRecorder) Close() error                 { return nil }
func (n *networkRecorder) Abort() error                 { return nil }

// TestRestoreOverNetwork: a target whose writes each cross the network
// gets whole chunks, one write each, not frame after frame.
func TestRestoreOverNetwork(t *testing.T) {
	repo, err := dedup.Init(context.Background(), t.TempDir(), dedup.InitOptions{BlockSize: testBlock, PackSize: 1 << 20}, nil,
		dedup.Options{NoSync: true, FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	data := randomBytes(t, testSize)
	cp, err := repo.Backup(context.Background(), deduptest.Source("v", data), dedup.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tgt := &networkRecorder{data: make([]byte, len(data))}
	if _, err := Restore(context.Background(), repo, cp, tgt, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tgt.data, data) {
		t.Fatal("restored bytes differ")
	}
	for _, n := range tgt.writes {
		if n != testBlock && n != len(data)%testBlock {
			t.Fatalf("a write of %d bytes: want whole blocks of %d", n, testBlock)
		}
	}
}

// TestRestoreSparse: in a target the restore created, the zero pages
// inside data blocks are left out (the file stays as sparse as its data);
// in one that may hold old data, every byte is written. A target over the
// network leaves out only runs of 16 pages or more.
func TestRestoreSparse(t *testing.T) {
	repo := deduptest.Repository(t)
	data := randomBytes(t, testSize)
	clear(data[testBlock+4096 : testBlock+3*4096])     // 2 zero pages in block 1
	clear(data[3*testBlock : 3*testBlock+testBlock/2]) // half of block 3: 8 pages
	clear(data[5*testBlock+100 : 5*testBlock+200])     // zeros, but no whole page
	const zeroPages = 2 + 8
	cp, err := repo.Backup(context.Background(), deduptest.Source("v", data), dedup.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "vol.img")
	ft, err := blockdev.CreateFileTarget(path, cp.Size, blockdev.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Restore(context.Background(), repo, cp, ft, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("restored bytes differ")
	}
	if want := int64(testSize - zeroPages*4096); n != want {
		t.Errorf("a created file: wrote %d bytes, want %d (all but the zero pages)", n, want)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	// Pages never written stay unallocated (ext4, XFS, tmpfs).
	if alloc := st.Blocks * 512; alloc > n+64<<10 {
		t.Errorf("the restored file takes %d bytes on disk for %d written: the zero pages were allocated", alloc, n)
	}

	// Not fresh: a device, or a file that may hold old data.
	old := &oldTarget{networkRecorder{data: bytes.Repeat([]byte{0xee}, len(data))}}
	n, err = Restore(context.Background(), repo, cp, old, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old.data, data) || n != testSize {
		t.Errorf("a target holding old data: wrote %d bytes, want all %d, and its bytes equal: %v", n, testSize, bytes.Equal(old.data, data))
	}

	// Fresh, over the network: a run shorter than 16 pages is written
	// with its neighbours, a longer one is left out.
	const bigBlock = 256 << 10
	repo, err = dedup.Init(context.Background(), t.TempDir(), dedup.InitOptions{BlockSize: bigBlock, PackSize: 1 << 20}, nil,
		dedup.Options{NoSync: true, FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	data = randomBytes(t, 4*bigBlock)
	clear(data[4096 : 9*4096])                    // 8 pages: written
	clear(data[bigBlock+4096 : bigBlock+21*4096]) // 20 pages: left out
	cp, err = repo.Backup(context.Background(), deduptest.Source("v", data), dedup.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	net := &freshRecorder{networkRecorder{data: make([]byte, len(data))}}
	n, err = Restore(context.Background(), repo, cp, net, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(data) - 20*4096); !bytes.Equal(net.data, data) || n != want {
		t.Errorf("a created image: wrote %d bytes, want %d, and its bytes equal: %v", n, want, bytes.Equal(net.data, data))
	}
}

// oldTarget is a network target that is not fresh.
type oldTarget struct{ networkRecorder }

func (*oldTarget) Fresh() bool { return false }

// freshRecorder is a network target that the restore created.
type freshRecorder struct{ networkRecorder }

func (*freshRecorder) Fresh() bool { return true }
