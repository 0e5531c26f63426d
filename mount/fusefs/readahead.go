package fusefs

import (
	"context"
	"sync"
	"syscall"
)

const (
	// readAhead is how many blocks past the current read a sequential
	// reader gets fetched in the background, and how many goroutines a
	// handle may run for it.
	readAhead = 2
	// seqSlack is how far from the end of the previous read a read may
	// start and still count as sequential: the kernel sends read-ahead
	// requests concurrently, so they arrive slightly out of order.
	seqSlack = 2 * maxRead
	// seqAfter is how many sequential reads in a row start read-ahead.
	seqAfter = 2
)

// handle is one open of a fileNode.
type handle struct {
	f *fsys
	v *volume
	w window

	mu     sync.Mutex
	next   int64 // where a sequential reader reads next (volume offset)
	streak int   // sequential reads in a row
	ahead  int64 // last block handed to the read-ahead
	closed bool
	jobs   chan int64         // blocks to warm; nil until read-ahead starts
	cancel context.CancelFunc // stops the read-ahead goroutines
	wg     sync.WaitGroup     // the read-ahead goroutines
}

func newHandle(f *fsys, v *volume, w window) *handle {
	return &handle{f: f, v: v, w: w, next: w.off, ahead: -1}
}

// observe records a read of n bytes at volume offset abs and, once the
// handle reads sequentially, queues the next blocks (at most readAhead
// past the one just read, holes skipped) for the read-ahead goroutines.
// A full queue drops the block: the reader will fetch it itself.
func (h *handle) observe(abs, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || n <= 0 {
		return
	}
	if abs >= h.next-seqSlack && abs <= h.next+seqSlack {
		h.streak++
		h.next = max(h.next, abs+n)
	} else {
		h.streak, h.ahead, h.next = 0, -1, abs+n
	}
	if h.streak < seqAfter {
		return
	}
	bs := h.v.bs
	cur := (abs + n - 1) / bs
	last := (h.w.off + h.w.size - 1) / bs
	for b := max(cur+1, h.ahead+1); b <= min(cur+readAhead, last); b++ {
		h.ahead = b
		if h.v.rd.IsHole(b * bs) {
			continue
		}
		h.startLocked()
		select {
		case h.jobs <- b:
		default:
		}
	}
}

// startLocked starts the read-ahead goroutines on first use. They live
// until the handle is released or the file system unmounted.
func (h *handle) startLocked() {
	if h.jobs != nil {
		return
	}
	h.jobs = make(chan int64, readAhead)
	ctx, cancel := context.WithCancel(h.f.life)
	h.cancel = cancel
	for range readAhead {
		h.wg.Add(1)
		h.f.wg.Add(1)
		go func() {
			defer h.f.wg.Done()
			defer h.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case b := <-h.jobs:
					h.v.warm(ctx, b)
				}
			}
		}()
	}
}

// Release stops the handle's read-ahead and waits for it.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	h.closed = true
	cancel := h.cancel
	h.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	h.wg.Wait()
	return 0
}

// warm brings block b into the repository's chunk cache; the repository
// makes concurrent fetches of one chunk (by the read-ahead and by readers)
// share a single read. Errors are not reported here: the reader's own
// read meets them again.
func (v *volume) warm(ctx context.Context, b int64) {
	v.rd.Warm(ctx, b*v.bs)
}

// warmRange fetches the data blocks of [abs, abs+n) in parallel when there
// are several (small blocks, large reads), and returns when all are in.
func (v *volume) warmRange(ctx context.Context, abs, n int64) {
	first, last := abs/v.bs, (abs+n-1)/v.bs
	if first == last {
		return // the read itself fetches it
	}
	var wg sync.WaitGroup
	for b := first; b <= last; b++ {
		if !v.rd.IsHole(b * v.bs) {
			wg.Go(func() { v.warm(ctx, b) })
		}
	}
	wg.Wait()
}
