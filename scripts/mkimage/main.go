// Command mkimage writes deterministic test disk images for scripts/bench.sh.
//
// Three modes:
//
//	mkimage -out img -size 2GiB [-zero-frac 0.1] [-text-frac 0.2] [-seed 1]
//	    a dense image, 4 MiB block by block: a -zero-frac share of blocks is
//	    all zeros (written, not holes), a -text-frac share is text-like
//	    (compressible, roughly 3-4x with zstd), the rest is pseudo-random
//	    (incompressible). Every block's content comes from its own ChaCha8
//	    stream, so no two blocks are alike and content-defined chunkers
//	    (restic) find nothing to deduplicate either.
//	mkimage -out img -size 64GiB -sparse-data 4GiB
//	    a sparse file of -size with -sparse-data bytes of random data written
//	    in runs of 1-16 MiB at scattered 4 MiB-aligned offsets; the rest are
//	    holes.
//	mkimage -out img -change-frac 0.01
//	    modifies an existing image in place: size*frac/4096 writes of 4 KiB
//	    of fresh random bytes, each at a random 4 KiB-aligned offset.
//
// Sizes take a K/M/G/T suffix (binary: KiB, MiB, GiB, TiB).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
)

const block = 4 << 20

func main() {
	var (
		out        = flag.String("out", "", "image file to write (required)")
		sizeS      = flag.String("size", "2GiB", "image size")
		seed       = flag.Uint64("seed", 1, "seed: the same seed writes the same bytes")
		zeroFrac   = flag.Float64("zero-frac", 0.10, "share of 4 MiB blocks that are all zeros")
		textFrac   = flag.Float64("text-frac", 0.20, "share of 4 MiB blocks that are compressible text")
		sparseS    = flag.String("sparse-data", "", "write a sparse image holding this much data")
		changeFrac = flag.Float64("change-frac", 0, "modify an existing image: overwrite this share of it in random 4 KiB pages")
	)
	flag.Parse()
	if *out == "" {
		fail(fmt.Errorf("-out is required"))
	}
	var err error
	switch {
	case *changeFrac > 0:
		err = change(*out, *changeFrac, *seed)
	case *sparseS != "":
		var size, data int64
		if size, err = parseSize(*sizeS); err == nil {
			if data, err = parseSize(*sparseS); err == nil {
				err = sparse(*out, size, data, *seed)
			}
		}
	default:
		var size int64
		if size, err = parseSize(*sizeS); err == nil {
			err = dense(*out, size, *seed, *zeroFrac, *textFrac)
		}
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkimage:", err)
	os.Exit(1)
}

func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(n * float64(mult)), nil
}

// rngFor returns the ChaCha8 stream of one (seed, purpose, index).
func rngFor(seed uint64, purpose byte, idx int64) *rand.ChaCha8 {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[0:], seed)
	binary.LittleEndian.PutUint64(k[8:], uint64(idx))
	k[16] = purpose
	return rand.NewChaCha8(k)
}

var words = strings.Fields(`the of and to in is for on that with as by at from this be
	are or it an was not but which have has had were been their they all
	block volume backup restore error warning info debug kernel eth0 link up down
	GET POST 200 404 500 /api/v1/items /var/lib/data request served in ms user
	session started closed connection retrying host db01 cache miss hit true false
	2024-05-01T12:00:00Z 2024-05-02T08:30:15Z systemd[1]: sshd[4242]: Accepted
	publickey for root from 10.0.0.17 port 52214 ssh2 <html> <div class="row"> </div>
	{"id": "name": "value": null, [ ] = ; if else return func var int string`)

// fillText writes text-like bytes: words from a fixed vocabulary separated
// by spaces and newlines.
func fillText(b []byte, rng *rand.Rand) {
	i := 0
	for i < len(b) {
		i += copy(b[i:], words[rng.IntN(len(words))])
		if i < len(b) {
			if rng.IntN(10) == 0 {
				b[i] = '\n'
			} else {
				b[i] = ' '
			}
			i++
		}
	}
}

// kind of dense block b: 0 zero, 1 text, 2 random.
func kind(seed uint64, b int64, zeroFrac, textFrac float64) int {
	x := rand.New(rngFor(seed, 'k', b)).Float64()
	switch {
	case x < zeroFrac:
		return 0
	case x < zeroFrac+textFrac:
		return 1
	}
	return 2
}

func dense(path string, size int64, seed uint64, zeroFrac, textFrac float64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	nblocks := (size + block - 1) / block
	workers := runtime.GOMAXPROCS(0)
	var next int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, block)
			for {
				mu.Lock()
				b := next
				next++
				stop := firstErr != nil
				mu.Unlock()
				if b >= nblocks || stop {
					return
				}
				n := min(int64(block), size-b*block)
				data := buf[:n]
				src := rngFor(seed, 'd', b)
				switch kind(seed, b, zeroFrac, textFrac) {
				case 0:
					clear(data)
				case 1:
					fillText(data, rand.New(src))
				default:
					_, _ = src.Read(data)
				}
				if _, err := f.WriteAt(data, b*block); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		f.Close()
		return firstErr
	}
	return f.Close()
}

func sparse(path string, size, data int64, seed uint64) error {
	if data > size {
		return fmt.Errorf("-sparse-data %d exceeds -size %d", data, size)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	slots := size / block
	want := (data + block - 1) / block
	rng := rand.New(rngFor(seed, 's', 0))
	// Pick runs of 1-4 blocks at random free slots until enough are taken.
	taken := make(map[int64]bool)
	for int64(len(taken)) < want {
		start := rng.Int64N(slots)
		run := 1 + rng.Int64N(4)
		for s := start; s < min(start+run, slots) && int64(len(taken)) < want; s++ {
			taken[s] = true
		}
	}
	list := make([]int64, 0, len(taken))
	for s := range taken {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	buf := make([]byte, block)
	for i, s := range list {
		n := int64(block)
		if int64(i) == want-1 && data%block != 0 {
			n = data % block
		}
		_, _ = rngFor(seed, 'S', s).Read(buf[:n])
		if _, err := f.WriteAt(buf[:n], s*block); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func change(path string, frac float64, seed uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	const page = 4096
	pages := fi.Size() / page
	if pages == 0 {
		f.Close()
		return fmt.Errorf("%s is smaller than one page", path)
	}
	writes := int64(float64(fi.Size()) * frac / page)
	rng := rand.New(rngFor(seed, 'c', 0))
	src := rngFor(seed, 'C', 0)
	buf := make([]byte, page)
	for i := int64(0); i < writes; i++ {
		_, _ = src.Read(buf)
		if _, err := f.WriteAt(buf, rng.Int64N(pages)*page); err != nil {
			f.Close()
			return err
		}
	}
	fmt.Printf("%d writes of 4 KiB\n", writes)
	return f.Close()
}
