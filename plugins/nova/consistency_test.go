//go:build ceph

package nova

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"cairn/dedup"
)

// writer writes an increasing counter at offset 0 of the root volume,
// then the same value into the data volume, through librbd handles of
// their own (as a guest would), until stop; it returns the last value.
func (f *fixture) writer(t *testing.T, stop <-chan struct{}) (last func() uint64, wait func()) {
	t.Helper()
	a, b := f.image(t, "volume-"+f.root.ID), f.image(t, "volume-"+f.data.ID)
	var k atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer a.Close()
		defer b.Close()
		buf := make([]byte, 4096)
		for n := uint64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			binary.LittleEndian.PutUint64(buf, n)
			if _, err := a.WriteAt(buf, 0); err != nil {
				t.Errorf("write %d to the root volume: %v", n, err)
				return
			}
			if _, err := b.WriteAt(buf, 0); err != nil {
				t.Errorf("write %d to the data volume: %v", n, err)
				return
			}
			k.Store(n)
		}
	}()
	return k.Load, wg.Wait
}

// counter reads the counter the writer left in a volume's checkpoint.
func counter(t *testing.T, repo *dedup.Repository, id string) uint64 {
	t.Helper()
	rd, err := repo.OpenCheckpoint(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if _, err := rd.ReadAtContext(context.Background(), b, 0); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b)
}

// TestConsistentSnapshot is the proof of the consistent level: while a
// writer puts counter n into the root volume and then into the data
// volume, a protection's two volume checkpoints hold counters that a
// single point in time can show (root n, data n or n-1: the write to
// both is in both or in the data volume's not yet). Sequential Cinder
// snapshots, taken seconds apart, are shown to break it, so the check
// can fail.
func TestConsistentSnapshot(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name       string
		options    map[string]any
		level      string
		consistent bool
	}{
		{"rbd group snapshot", nil, Consistent, true},
		{"sequential cinder snapshots", map[string]any{"sequential": true}, Sequential, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			last, wait := f.writer(t, stop)
			_, m := f.protect(t, "", tc.options)
			close(stop)
			wait()
			if m.Consistency.Level != tc.level {
				t.Fatalf("consistency %+v, want level %s", m.Consistency, tc.level)
			}
			root, data := counter(t, f.repo, m.Volumes[0].BackupID), counter(t, f.repo, m.Volumes[1].BackupID)
			t.Logf("%s: root volume at write %d, data volume at write %d, writer ended at %d (%s)",
				tc.name, root, data, last(), m.Consistency.Reason)
			if data == 0 || last() <= max(root, data) {
				t.Fatalf("the writer did not run across the snapshot (root %d, data %d, last %d)", root, data, last())
			}
			ok := root == data || root == data+1
			if ok != tc.consistent {
				t.Errorf("root volume at write %d, data volume at write %d: consistent=%v, want %v", root, data, ok, tc.consistent)
			}
		})
	}
	if n := f.j.len(); n != 0 {
		t.Errorf("journal entries left: %+v", f.j.m)
	}
}
