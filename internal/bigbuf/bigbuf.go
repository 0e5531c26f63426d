// Package bigbuf gives the data path its large buffers: zeroed ones backed
// by transparent huge pages where the kernel allows, a bounded free list
// of them, and a heap primed for huge pages before they are made.
package bigbuf

import "sync"

// Pool is a bounded free list of large byte buffers, owned by one backup
// (pack buffers, shard objects) or one open repository (decoded chunks and
// frames): on the data path a fresh buffer of a few MiB costs more in page
// faults and zeroing than the work done on it, so after its first packs a
// backup reuses its buffers instead of allocating them. Unlike a sync.Pool
// it does not lose its buffers at each garbage collection (with several
// MiB per chunk, collections are frequent), and unlike a package-level
// list it holds nothing once its owner is done. A nil *Pool allocates
// every time.
type Pool struct {
	free chan []byte
	slab *slab // where new buffers of up to slab.piece bytes come from
}

// NewPool returns a pool that keeps up to n buffers.
func NewPool(n int) *Pool { return &Pool{free: make(chan []byte, n)} }

// NewSlabPool is NewPool for buffers of up to piece bytes, well under a
// huge page (decoded frames): new ones are cut from huge-page slabs
// instead of made one by one, so that filling a cache of them faults in
// one page per 2 MiB instead of one per 4 KiB (a frame cache's 32 MiB was
// 8,000 faults of every restore of deltas). A slab stays in memory while
// any of its pieces is in use.
func NewSlabPool(n, piece int) *Pool {
	return &Pool{free: make(chan []byte, n), slab: &slab{piece: piece}}
}

// Get returns a buffer of length n with unspecified contents.
func (bp *Pool) Get(n int) []byte {
	if bp != nil {
		select {
		case b := <-bp.free:
			if cap(b) >= n {
				return b[:n]
			}
		default:
		}
		if bp.slab != nil && n <= bp.slab.piece {
			return bp.slab.cut(n)
		}
		// Room for a quarter more: the sizes asked of one pool vary a
		// little (a pack's shards grow with its last blob), and a buffer
		// too small for the next request is dropped, and a new one zeroed
		// and faulted in, every few packs.
		return Make(n + n/4)[:n]
	}
	return Make(n)
}

// slab cuts pieces of one size from huge-page buffers.
type slab struct {
	piece int
	mu    sync.Mutex
	rest  []byte
}

// slabPieces is how many pieces a slab holds at least.
const slabPieces = 16

func (s *slab) cut(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rest) < s.piece {
		size := (slabPieces*s.piece + hugePage - 1) &^ (hugePage - 1)
		s.rest = Make(size)
	}
	b := s.rest[:n:s.piece]
	s.rest = s.rest[s.piece:]
	return b
}

// Put hands b back; whoever gave it must not use it again.
func (bp *Pool) Put(b []byte) {
	if bp == nil {
		return
	}
	select {
	case bp.free <- b:
	default:
	}
}

// heapPrime is how much of the heap PrimeHeap advises: more than a backup's
// heap grows to (about 210 MB live, twice that before a collection).
const heapPrime = 512 << 20

var primeOnce sync.Once

// PrimeHeap makes the heap's next 512 MiB fault in as transparent huge
// pages, 2 MiB at a time instead of 4 KiB: it allocates that much,
// advises it (MADV_HUGEPAGE, which stays with the addresses) and frees it
// with one collection, and Go's page allocator, which hands out the
// lowest free addresses that fit, then places what the process allocates
// next there. Call it once the process knows it will move data, before
// its large allocations: opening a repository does.
//
// Make advises the buffers it returns, but only after the runtime has
// zeroed them, and Go zeroes a large allocation whenever its addresses
// were used before, even if never touched: an allocation landing on
// such a range faulted in 4 KiB at a time before the advice was given.
// Which range an allocation gets depends on the collector's timing, so on
// the 2-core test machine (transparent huge pages on request only) a full
// backup of the reference image took either about 2,700 minor faults or
// 8,000 to 31,000, run to run: argon2id's 64 MiB, badger's memtable (20
// MiB) and the pack buffers landed on such ranges. With the heap primed,
// they land on advised addresses: 2,400 to 2,900 faults in ten runs
// (built without Ceph), and a restore 1,900 to 2,400 instead of 4,000 to
// 4,500.
//
// Only the first call does anything. Where the kernel has no huge pages
// to give, nothing is lost but the gain; the cost is one collection of a
// small heap and, for a long-lived process, a resident size that grows
// by up to 2 MiB instead of 4 KiB where it touches new memory.
func PrimeHeap() { primeOnce.Do(func() { primeHeap(heapPrime) }) }

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// Make returns a zeroed buffer of n bytes for the data path. Buffers of
// a few MiB are what a backup and a restore fault in, and on a small VM a
// fault costs more than hashing the page; Debian's kernels enable
// transparent huge pages on request only, and Go's heap does not ask. So
// a buffer of at least one huge page starts on a huge-page boundary (Go
// aligns large objects to 8 KiB only: measured here, a 4 MiB buffer then
// spans a single whole huge page and faults in 613 times, aligned 23) and
// is advised as huge pages. The alignment costs up to 2 MiB of address
// space that is never touched, so never resident.
func Make(n int) []byte {
	if n < hugePage {
		return make([]byte, n)
	}
	return alignHuge(make([]byte, n+hugePage), n)
}
