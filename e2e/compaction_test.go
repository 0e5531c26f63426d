package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Layout of the compaction test, in 64 KiB blocks (smallGeometry): B is
// compactPacks packs of 16 random blocks. A takes three blocks of each pack
// of B and nothing else, so A stores no chunk of its own and each pack of B
// is 3/16 live once B is forgotten: prune --compact-below 0.5 compacts
// every one. In A, each taken block is followed by three holes, so reading
// one block never brings the next into a cache (the kernel's read-ahead is
// 128 KiB, cairn's FUSE read-ahead two blocks, holes skipped).
const (
	compactBS    = 64 << 10
	compactPacks = 4
	compactSlot  = 4 // blocks of A per block taken from B: one data, three holes
)

// compactTaken are the blocks of each pack of B that A holds, in order: the
// first is read before the prune (it caches the pack's headers), the second
// only after it, the third while it runs. They sit away from the pack's
// edges, where parallel backup workers may swap blocks between packs.
var compactTaken = []int{3, 8, 12}

// compactSetup backs up B and then A, and returns A's checkpoint, A's bytes
// and B's checkpoint.
func compactSetup(t *testing.T, e *env) (a checkpoint, dataA []byte, b checkpoint) {
	t.Helper()
	dataB := randomBytes(71, compactPacks*16*compactBS)
	pathB := filepath.Join(e.scratch, "b.img")
	writeFile(t, pathB, dataB)
	b = e.backup(pathB)

	dataA = make([]byte, compactPacks*len(compactTaken)*compactSlot*compactBS)
	for p := range compactPacks {
		for i, o := range compactTaken {
			from := (16*p + o) * compactBS
			copy(dataA[compactDataBlock(p, i)*compactBS:], dataB[from:from+compactBS])
		}
	}
	pathA := filepath.Join(e.scratch, "a.img")
	writeFile(t, pathA, dataA)
	a = e.backup(pathA)
	if a.NewChunks != 0 {
		t.Fatalf("A stored %d new chunks, want none: every block of A is a block of B", a.NewChunks)
	}
	if a.Blocks-a.HoleBlocks != int64(compactPacks*len(compactTaken)) {
		t.Fatalf("A has %d data blocks, want %d", a.Blocks-a.HoleBlocks, compactPacks*len(compactTaken))
	}
	return a, dataA, b
}

// compactDataBlock is the block of A that holds the i-th block A took from
// pack p of B.
func compactDataBlock(p, i int) int {
	return (p*len(compactTaken) + i) * compactSlot
}

// compactReader reads ranges of A through one of the two live readers.
// read returns errors rather than failing the test: it also runs on
// goroutines beside the prune.
type compactReader struct {
	name string
	read func(off, n int64) ([]byte, error)
	// whole returns the SHA-256 of all of A read through this reader.
	whole func(t *testing.T) string
}

// nbdRange reads n bytes at off of an NBD export, the way a hypervisor
// reads a few sectors: qemu-img convert of a raw window of the export
// (qemu-img dd cannot skip in the qemu of Debian 12).
func nbdRange(dir, addr, export string, off, n int64) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("NBD address %q: %w", addr, err)
	}
	f, err := os.CreateTemp(dir, "range-*.raw")
	if err != nil {
		return nil, err
	}
	f.Close()
	defer os.Remove(f.Name())
	spec := fmt.Sprintf(`json:{"driver":"raw","offset":%d,"size":%d,"file":{"driver":"nbd","export":%q,"server":{"type":"inet","host":%q,"port":%q}}}`,
		off, n, export, host, port)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "raw", spec, f.Name()).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-img convert of %d bytes at %d: %w\n%s", n, off, err, clip(string(out)))
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != n {
		return nil, fmt.Errorf("qemu-img convert of %d bytes at %d wrote %d", n, off, len(b))
	}
	return b, nil
}

// fuseRange reads n bytes at off of a file on the FUSE mount through a
// fresh descriptor with the kernel's read-ahead off, so the read reaches
// cairn unless the kernel already caches exactly these pages.
func fuseRange(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		return nil, fmt.Errorf("fadvise %s: %w", path, err)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read %d bytes at %d of %s: %w", n, off, path, err)
	}
	return b, nil
}

// TestReadersSurviveCompaction serves checkpoint A through a live `cairn
// nbd serve` export and a `cairn mount` FUSE mount, reads part of it
// (which caches the headers of the packs it is in), then has other cairn
// processes forget B and prune with compaction, so that every pack A's
// manifest names is rewritten and deleted. Reads made while the prune runs
// and reads after it, of blocks never read before, stay byte-exact, and so
// does a whole read of A through both.
func TestReadersSurviveCompaction(t *testing.T) {
	requireNBDTool(t, "qemu-img", "qemu-utils")
	requireNBDTool(t, "nbdcopy", "libnbd-bin")
	fuseRequire(t, "fusermount3")
	e := newRepo(t, repoOpts{})
	a, dataA, b := compactSetup(t, e)
	sum := sha256.Sum256(dataA)
	want := hex.EncodeToString(sum[:])

	s := e.startNBD("")
	uri := s.uri(a.ID)
	m := fuseStart(t, e)
	disk := filepath.Join(m.dir, "by-id", a.ID, "disk.raw")
	readers := []compactReader{
		{
			name: "nbd",
			read: func(off, n int64) ([]byte, error) { return nbdRange(e.scratch, s.addr, a.ID, off, n) },
			whole: func(t *testing.T) string {
				out := filepath.Join(t.TempDir(), "a.raw")
				writeFile(t, out, nil)
				mustNBDTool(t, "nbdcopy", uri, out)
				return fileHash(t, out)
			},
		},
		{
			name:  "fuse",
			read:  func(off, n int64) ([]byte, error) { return fuseRange(disk, off, n) },
			whole: func(t *testing.T) string { return fileHash(t, disk) },
		},
	}
	// check reads the i-th taken block of every pack (its start and its
	// end) and returns what went wrong.
	check := func(r compactReader, i int, when string) []error {
		var errs []error
		for p := range compactPacks {
			off := int64(compactDataBlock(p, i)) * compactBS
			for _, rg := range []struct{ off, n int64 }{{off, 4 * kib}, {off + compactBS - 8*kib, 8 * kib}} {
				got, err := r.read(rg.off, rg.n)
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%s %s: %w", r.name, when, err))
				case !bytes.Equal(got, dataA[rg.off:rg.off+rg.n]):
					errs = append(errs, fmt.Errorf("%s %s: %d bytes at %d differ from the source", r.name, when, rg.n, rg.off))
				}
			}
		}
		return errs
	}
	report := func(errs []error) {
		t.Helper()
		for _, err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
	}

	for _, r := range readers {
		report(check(r, 0, "before the prune"))
	}
	packsBefore := packNames(e.shardFiles("packs"))

	e.must("forget", b.ID)
	var wg sync.WaitGroup
	during := make([][]error, len(readers))
	for i, r := range readers {
		wg.Go(func() { during[i] = check(r, 2, "while the prune runs") })
	}
	pr := e.run("prune", "--grace", "0s", "--compact-below", "0.5", "--json")
	wg.Wait()
	if pr.code != 0 {
		t.Fatalf("prune failed:\n%s", pr)
	}
	report(slices.Concat(during...))
	out := pr.stdout
	var rep struct {
		PacksCompacted int `json:"packs_compacted"`
		PacksLeft      int `json:"packs_left"`
	}
	if err := jsonUnmarshal(out, &rep); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, clip(out))
	}
	if rep.PacksCompacted < 1 || rep.PacksLeft != 0 {
		t.Fatalf("prune compacted %d packs and left %d: want A's packs compacted\n%s", rep.PacksCompacted, rep.PacksLeft, out)
	}
	after := packNames(e.shardFiles("packs"))
	for p := range packsBefore {
		if after[p] {
			t.Fatalf("pack %s, which A's manifest names, survived the prune: the test did not move A's chunks", p)
		}
	}

	for _, r := range readers {
		report(check(r, 1, "after the prune"))
		if got := r.whole(t); got != want {
			t.Errorf("%s after the prune: sha256 %s, want %s", r.name, got, want)
		}
	}
	for _, text := range []string{s.stderrText(), m.stderr.String()} {
		if strings.Contains(text, "error") {
			t.Errorf("a reader logged an error:\n%s", text)
		}
	}
}

// packNames is the set of pack names among shard file paths.
func packNames(files []string) map[string]bool {
	out := make(map[string]bool)
	for _, f := range files {
		out[filepath.Base(f)] = true
	}
	return out
}
