package dedup

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// slowSource stretches a backup so that prunes overlap every stage of it.
type slowSource struct {
	Source
	delay time.Duration
}

func (s slowSource) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(s.delay)
	return s.Source.ReadAt(p, off)
}

// TestPruneConcurrentWithBackup runs prunes back to back, without a grace
// period, while a backup stores data whose chunks belong only to a
// checkpoint just forgotten: the backup finds them in the index while the
// sweep is removing them. Whatever the interleaving, every checkpoint that
// commits must restore exactly.
func TestPruneConcurrentWithBackup(t *testing.T) {
	ctx := context.Background()
	var inUse atomic.Int64
	logf := func(format string, args ...any) {
		if strings.Contains(format, "in use by a running backup") {
			inUse.Add(1)
		}
	}
	r, err := Init(ctx, t.TempDir(), InitOptions{BlockSize: testBS, PackSize: 1 << 20}, nil, Options{NoSync: true, Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	type made struct {
		cp   *Checkpoint
		data []byte
	}
	base := randomData(99, 24*testBS)
	kept := []made{{backup(t, r, base), base}}
	tmp := t.TempDir()
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		data := randomData(uint64(100+round), 32*testBS)
		// Share some blocks with the kept checkpoint too.
		copy(data[8*testBS:], base[:4*testBS])
		x := backup(t, r, data)
		// Odd rounds use x as the parent and forget it while the backup
		// runs: then chunks are taken from its block map without a lookup,
		// as they are read or, with a change list, all at the start.
		withParent := round%2 == 1
		if !withParent {
			if err := r.DeleteCheckpoint(ctx, x.ID); err != nil {
				t.Fatal(err)
			}
		}
		var o BackupOptions
		o.Workers = 2
		if withParent {
			o.Parent = x.ID
			if round%4 == 3 {
				o.Changed = []Extent{{Off: 0, Len: testBS}}
			}
		}
		done := make(chan struct{})
		var y *Checkpoint
		var berr error
		go func() {
			defer close(done)
			y, berr = r.Backup(ctx, slowSource{newMemSource("vol", data), 2 * time.Millisecond}, o)
		}()
		if withParent {
			time.Sleep(time.Duration(round) * time.Millisecond)
			if err := r.DeleteCheckpoint(ctx, x.ID); err != nil {
				t.Fatal(err)
			}
		}
		prunes := 0
		for running := true; running; prunes++ {
			if _, err := r.Prune(ctx, PruneOptions{Grace: -1, TempDir: tmp}); err != nil {
				t.Fatalf("round %d: prune: %v", round, err)
			}
			select {
			case <-done:
				running = false
			default:
			}
		}
		switch {
		case berr == nil:
			kept = append(kept, made{y, data})
		case withParent && (errors.Is(berr, ErrChunkNotFound) || errors.Is(berr, ErrCheckpointNotFound)):
			// Refused rather than committing a checkpoint with holes.
			t.Logf("round %d: backup refused: %v", round, berr)
		default:
			t.Fatalf("round %d: backup: %v", round, berr)
		}
		t.Logf("round %d: %d prunes during the backup", round, prunes)
	}
	mustPrune(t, r, PruneOptions{Grace: -1, TempDir: tmp})
	for _, m := range kept {
		restoreFresh(t, r, m.cp.ID, m.data)
	}
	t.Logf("prune found packs in use by the backup %d times", inUse.Load())
	if len(kept) < 2 {
		t.Fatal("no backup committed while pruning")
	}
}
