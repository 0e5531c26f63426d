// Package bigbuf gives the data path its large buffers: zeroed ones backed
// by transparent huge pages where the kernel allows, and a bounded free
// list of them.
package bigbuf

// Pool is a bounded free list of large byte buffers, owned by one
// backup: on the data path a fresh buffer of a few MiB costs more in page
// faults and zeroing than the work done on it, so after its first packs a
// backup reuses pack buffers and shard objects instead of allocating them.
// Unlike a sync.Pool it does not lose its buffers at each garbage
// collection (with several MiB per chunk, collections are frequent), and
// unlike a package-level list it holds nothing once the backup is over.
// A nil *Pool allocates every time.
type Pool struct{ free chan []byte }

// NewPool returns a pool that keeps up to n buffers.
func NewPool(n int) *Pool { return &Pool{free: make(chan []byte, n)} }

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
	}
	return Make(n)
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

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// Make returns a zeroed buffer of n bytes for the data path. Its
// whole 2 MiB pages are advised as transparent huge pages: the first touch
// of each then costs one page fault instead of 512 (Debian's kernels
// enable THP on request only, and Go's heap does not ask). Buffers of a
// few MiB are what a backup and a restore fault in, and on a small VM a
// fault costs more than hashing the page.
func Make(n int) []byte {
	b := make([]byte, n)
	if n >= 2*hugePage {
		adviseHuge(b)
	}
	return b
}
