package dedup

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
)

// discardAt is an io.WriterAt that keeps nothing.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// heapAllocated returns the bytes fn allocated on the heap.
func heapAllocated(fn func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// TestDataPathAllocations: backup and restore reuse their buffers from
// chunk to chunk and pack to pack instead of allocating chunk- and
// pack-sized ones each time (fresh buffers cost a page fault per 4 KiB
// and their zeroing: restore allocated about four times what it restored,
// backup a new set of shard objects per pack). What a backup or restore
// allocates may have a fixed part (its first packs' buffers, the index),
// but the part that grows with the bytes moved must be small: the test
// moves a small and a large image of the same kind and bounds the
// difference, for an encrypted 4+2 repository.
func TestDataPathAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 640 MiB twice")
	}
	if raceEnabled {
		t.Skip("the race detector's own allocations would be counted")
	}
	r := testRepository(t, InitOptions{BlockSize: 1 << 20, PackSize: 4 << 20, Password: []byte("pw")})
	ctx := context.Background()
	image := func(seed uint64, size int) []byte {
		// Half incompressible, half compressible: both decode paths.
		data := randomData(seed, size)
		copy(data[size/2:], bytes.Repeat([]byte("cairn compressible "), size/2/19))
		return data
	}
	type cost struct{ backup, restore int64 }
	measure := func(seed uint64, size int) cost {
		data := image(seed, size)
		var cp *Checkpoint
		var c cost
		c.backup = heapAllocated(func() {
			var err error
			if cp, err = r.Backup(ctx, newMemSource(fmt.Sprint("img", seed), data), BackupOptions{Workers: 2}); err != nil {
				t.Fatal(err)
			}
		})
		c.restore = heapAllocated(func() {
			if _, err := r.Restore(ctx, cp.ID, discardAt{}, RestoreOptions{InFlight: 4}); err != nil {
				t.Fatal(err)
			}
		})
		return c
	}
	// The fixed part is not fixed: how many pool buffers a backup's first
	// packs need depends on whether earlier ones were uploaded yet. A
	// backup of 32 MiB allocated from 33 to 65 MiB, run to run (once 0.24
	// bytes per extra byte on a loaded machine); one of 160 MiB allocated
	// 64 MiB in each of 12 runs: its pools fill. So the two sizes compared
	// are both large, and the smaller is measured twice (distinct data,
	// nothing deduplicated) and counted at its most.
	const small, large = 160 << 20, 320 << 20
	var s cost
	for _, seed := range []uint64{1, 3} {
		c := measure(seed, small)
		s.backup, s.restore = max(s.backup, c.backup), max(s.restore, c.restore)
	}
	l := measure(2, large)
	extra := float64(large - small)
	perByte := cost{backup: l.backup - s.backup, restore: l.restore - s.restore}
	t.Logf("allocated: backup %d MiB (%d MiB of %d MiB), restore %d MiB (%d MiB); per extra byte: backup %.3f, restore %.3f",
		l.backup>>20, s.backup>>20, small>>20, l.restore>>20, s.restore>>20,
		float64(perByte.backup)/extra, float64(perByte.restore)/extra)
	// Before: about 1.5 per byte for backup (new shard objects per
	// pack) and 4 for restore.
	if float64(perByte.backup) > 0.2*extra {
		t.Errorf("backup allocates %.2f bytes per extra byte moved, want at most 0.2", float64(perByte.backup)/extra)
	}
	// Framed chunks are restored a few frames at a time: with 4 fetches in
	// flight the whole restore needs a few MiB (16 MiB when each fetch
	// held whole chunks three times over).
	if l.restore > 10<<20 {
		t.Errorf("restore of %d MiB allocates %d MiB in all, want at most 10", large>>20, l.restore>>20)
	}
	if float64(perByte.restore) > 0.2*extra {
		t.Errorf("restore allocates %.2f bytes per extra byte moved, want at most 0.2", float64(perByte.restore)/extra)
	}
}
