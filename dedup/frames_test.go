package dedup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"

	"cairn/dedup/pack"
)

// storedFlags returns the flags of every blob in r's packs.
func storedFlags(t *testing.T, r *Repository) map[uint8]int {
	t.Helper()
	got := map[uint8]int{}
	err := r.listPacks(context.Background(), func(p PackID) error {
		entries, err := r.packHeader(context.Background(), p)
		for _, e := range entries {
			got[e.Flags]++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRandomReads reads n random ranges of the checkpoint through a
// Reader and compares them: half of them with the chunk under the start
// loaded whole first (FUSE read-ahead), the others frame by frame, some
// ending on a frame boundary, each into a buffer with more after it that
// the read must leave alone (frames decoded straight into it may not use
// the decoder's slack there).
func checkRandomReads(t *testing.T, r *Repository, id string, want []byte, seed uint64, n int) {
	t.Helper()
	ctx := context.Background()
	rd, err := r.OpenCheckpoint(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	const guard = 4 * frameSlack
	for i := range n {
		off := rng.Int64N(int64(len(want)))
		l := 1 + rng.Int64N(min(int64(len(want))-off, 3*int64(rd.BlockSize())/2))
		if i%4 == 3 {
			unit := []int64{4 << 10, 128 << 10, 256 << 10}[i%3]
			if end := (off + l) / unit * unit; end > off {
				l = end - off
			}
		}
		if ref, ok := rd.bm.Lookup(off / int64(rd.BlockSize())); ok && i%2 == 1 {
			s, err := r.loadChunk(ctx, ref.ID, rd.bm.Packs[ref.Pack])
			if err != nil {
				t.Fatal(err)
			}
			s.release()
		}
		buf := bytes.Repeat([]byte{0xa5}, int(l)+guard)
		got := buf[:l]
		if _, err := rd.ReadAt(got, off); err != nil {
			t.Fatalf("read [%d, %d): %v", off, off+l, err)
		}
		if !bytes.Equal(got, want[off:off+l]) {
			t.Fatalf("read [%d, %d) differs", off, off+l)
		}
		if !bytes.Equal(buf[l:], bytes.Repeat([]byte{0xa5}, guard)) {
			t.Fatalf("read [%d, %d) wrote past the end of its buffer", off, off+l)
		}
	}
}

func TestFramedRoundTrip(t *testing.T) {
	const bs = 256 << 10
	data := make([]byte, 9*bs+4321)
	copy(data, randomData(7, 3*bs))
	copy(data[4*bs:], bytes.Repeat([]byte("framed text "), 2*bs/12))
	copy(data[7*bs+100:], randomData(8, bs+10))
	for _, tc := range []struct {
		name      string
		frameSize int
		framed    bool
	}{
		{"whole chunks", -1, false},
		{"4 KiB frames", 4 << 10, true},
		{"default frames", 0, true},
		// One frame, for the page hashes a later delta compares against.
		{"frames as large as a block", bs, true},
	} {
		for _, enc := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "", true: " encrypted"}[enc], func(t *testing.T) {
				o := InitOptions{BlockSize: bs, PackSize: 1 << 20}
				opts := Options{NoSync: true, FrameSize: tc.frameSize}
				if enc {
					o.Password, opts.Password = []byte("pw"), []byte("pw")
				}
				r, err := Init(context.Background(), t.TempDir(), o, nil, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				cp, err := r.Backup(context.Background(), newMemSource("v", data), BackupOptions{})
				if err != nil {
					t.Fatal(err)
				}
				framed := 0
				for fl, n := range storedFlags(t, r) {
					if fl&blobFramed != 0 {
						framed += n
					}
				}
				if (framed > 0) != tc.framed {
					t.Fatalf("%d framed blobs stored, want framed=%v", framed, tc.framed)
				}
				if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
					t.Fatal("restore differs")
				}
				checkRandomReads(t, r, cp.ID, data, 1, 300)
				rep, err := r.Verify(context.Background(), VerifyOptions{Deep: true})
				if err != nil || !rep.OK {
					t.Fatalf("verify --deep: %+v, %v", rep, err)
				}
			})
		}
	}
}

// TestFramedDamage: a damaged frame (damage the shards' checksums let
// through, or a tampered one) fails what covers it, as corrupt, and not
// its neighbours; a damaged table fails the blob.
func TestFramedDamage(t *testing.T) {
	for _, enc := range []bool{false, true} {
		o := InitOptions{BlockSize: 256 << 10, PackSize: 1 << 20}
		opts := Options{NoSync: true, FrameSize: 16 << 10}
		if enc {
			o.Password, opts.Password = []byte("pw"), []byte("pw")
		}
		r, err := Init(context.Background(), t.TempDir(), o, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		raw := randomData(9, 256<<10)
		id := r.hash.id(raw)
		stored, flags := r.encodeBlob(id, raw, &blobScratch{}, nil)
		e := packEntry{ID: id, StoredLen: uint32(len(stored)), RawLen: uint32(len(raw)), Flags: flags}
		tl := r.frameTableLen(e)
		frames, err := r.decodeFrameTable(e, bytes.Clone(stored[:tl]), nil)
		if err != nil || len(frames) != 16 {
			t.Fatalf("encrypted=%v: table of %d frames, %v; want 16", enc, len(frames), err)
		}
		bad := bytes.Clone(stored)
		bad[frames[3].off+frames[3].n/2] ^= 0xff
		if _, err := r.decodeBlob(e, bytes.Clone(bad), nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("encrypted=%v: whole decode over a damaged frame: %v, want corrupt", enc, err)
		}
		plain := make([]byte, 16<<10)
		for i, want := range map[int]bool{3: false, 2: true, 4: true} {
			f := frames[i]
			err := r.decodeFrame(id, i, f, bytes.Clone(bad[f.off:f.off+f.n]), plain)
			if ok := err == nil && bytes.Equal(plain, raw[i*16<<10:][:16<<10]); ok != want || (err != nil && !errors.Is(err, ErrCorrupt)) {
				t.Errorf("encrypted=%v: frame %d of the damaged blob: %v, want intact=%v", enc, i, err, want)
			}
		}
		// A frame put in another frame's place fails to open: its sealing
		// names its index.
		if f2, f4 := frames[2], frames[4]; enc && f2.n == f4.n {
			f4.sum = f2.sum
			if err := r.decodeFrame(id, 4, f4, bytes.Clone(stored[f2.off:f2.off+f2.n]), plain); !errors.Is(err, ErrCorrupt) {
				t.Errorf("encrypted: frame 2 read in frame 4's place: %v, want corrupt", err)
			}
		}
		tbad := bytes.Clone(stored)
		tbad[5] ^= 1
		if _, err := r.decodeFrameTable(e, tbad[:tl], nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("encrypted=%v: damaged frame table: %v, want corrupt", enc, err)
		}
		r.Close()
	}
}

// TestFormat1Readable: repositories written before frames restore, read at
// random, verify, and take new (framed) backups beside the old ones.
func TestFormat1Readable(t *testing.T) {
	vols := format1Volumes()
	for _, enc := range []string{"plain", "encrypted"} {
		t.Run(enc, func(t *testing.T) {
			dir := copyTree(t, filepath.Join(format1Dir, enc))
			// Frames smaller than the old 64 KiB blocks, so new chunks
			// are framed.
			opts := Options{NoSync: true, FrameSize: 16 << 10}
			if enc == "encrypted" {
				opts.Password = format1Password
			}
			ctx := context.Background()
			r, err := Open(ctx, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { r.Close() }()
			cps, err := r.Checkpoints(ctx)
			if err != nil || len(cps) != 2 {
				t.Fatalf("checkpoints: %d, %v; want 2", len(cps), err)
			}
			for fl := range storedFlags(t, r) {
				if fl&blobFramed != 0 {
					t.Fatal("the old repository holds framed blobs: the test data is not the old format")
				}
			}
			for _, cp := range cps {
				want := vols[cp.Tags["version"]]
				if got := restoreBytes(t, r, cp.ID, cp.Size); !bytes.Equal(got, want) {
					t.Fatalf("checkpoint %s (%s) restores differently", cp.ID, cp.Tags["version"])
				}
				checkRandomReads(t, r, cp.ID, want, 2, 100)
			}
			// A new backup before the upgrade stores whole blobs, which the
			// release that made the repository can read.
			v3 := append([]byte(nil), vols["v2"]...)
			copy(v3[4<<10:], randomData(103, 200<<10))
			if _, err := r.Backup(ctx, newMemSource("vol", v3), BackupOptions{}); err != nil {
				t.Fatal(err)
			}
			for fl := range storedFlags(t, r) {
				if fl&blobFramed != 0 {
					t.Fatal("a backup into a format 1 repository stored framed blobs")
				}
			}
			up, err := r.Upgrade(ctx)
			if err != nil || up.From != 1 || up.To != 2 {
				t.Fatalf("upgrade: %+v, %v; want from 1 to 2", up, err)
			}
			// After it, changed blocks are framed; unchanged ones dedup
			// against the old blobs.
			v4 := append([]byte(nil), v3...)
			copy(v4[300<<10:], randomData(104, 100<<10))
			cp4, err := r.Backup(ctx, newMemSource("vol", v4), BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if storedFlags(t, r)[framedFlags(14)|blobPageHashes] == 0 {
				t.Fatal("a backup after the upgrade stored no framed blob")
			}
			if got := restoreBytes(t, r, cp4.ID, cp4.Size); !bytes.Equal(got, v4) {
				t.Fatal("a backup after the upgrade restores differently")
			}
			checkRandomReads(t, r, cp4.ID, v4, 3, 100)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if r, err = Open(ctx, dir, opts); err != nil {
				t.Fatal(err)
			}
			if v := r.Config().Version; v != 2 {
				t.Fatalf("reopened after the upgrade at format %d, want 2", v)
			}
			if up, err := r.Upgrade(ctx); err != nil || up.From != 2 || up.To != 2 {
				t.Fatalf("second upgrade: %+v, %v; want nothing to do", up, err)
			}
			cps, err = r.Checkpoints(ctx)
			if err != nil || len(cps) != 4 {
				t.Fatalf("checkpoints after the upgrade: %d, %v; want 4", len(cps), err)
			}
			for _, cp := range cps {
				if got := restoreBytes(t, r, cp.ID, cp.Size); len(got) != int(cp.Size) {
					t.Fatalf("checkpoint %s does not restore", cp.ID)
				}
			}
			rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
			if err != nil || !rep.OK {
				t.Fatalf("verify --deep: %+v, %v", rep, err)
			}
		})
	}
}

// sliceTarget is an io.WriterAt over a byte slice.
type sliceTarget []byte

func (s sliceTarget) WriteAt(p []byte, off int64) (int, error) { return copy(s[off:], p), nil }

// TestWriteFramedChecksChunkID: a restore writes a framed chunk frame by
// frame and still checks its ID over the whole. Frames swapped with a
// table to match read fine one by one in an unencrypted repository (no
// seal binds a frame to its place there); only the ID tells.
func TestWriteFramedChecksChunkID(t *testing.T) {
	ctx := context.Background()
	r, err := Init(ctx, t.TempDir(), InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, NoCompress: true}, nil, Options{NoSync: true, FrameSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw := randomData(11, 64<<10)
	id := r.hash.id(raw)
	stored, flags := r.encodeBlob(id, raw, &blobScratch{}, nil)
	e := packEntry{ID: id, StoredLen: uint32(len(stored)), RawLen: uint32(len(raw)), Flags: flags}
	put := func(p PackID, blob []byte) chunkLoc {
		if _, err := r.obj.Put(ctx, pack.Name(p), blob); err != nil {
			t.Fatal(err)
		}
		return chunkLoc{Pack: p, Entry: e}
	}
	got := make(sliceTarget, len(raw))
	if err := r.writeFramed(ctx, put(PackID{1}, bytes.Clone(stored)), restoreWriter{w: got}, 0, int64(len(raw)), &frameBuffers{}); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("writeFramed of an intact chunk: %v (bytes equal: %v)", err, bytes.Equal(got, raw))
	}
	// Swap frames 1 and 2 (16 KiB each, stored as they are) and their
	// table entries, and fix the table's checksum.
	tl := r.frameTableLen(e)
	fo := tl + r.pageHashesLen(e) // where the frames start
	swapped := bytes.Clone(stored)
	f1, f2 := swapped[fo+16<<10:fo+32<<10], swapped[fo+32<<10:fo+48<<10]
	tmp := bytes.Clone(f1)
	copy(f1, f2)
	copy(f2, tmp)
	ent := swapped[12:36]
	tmp = bytes.Clone(ent[:12])
	copy(ent[:12], ent[12:])
	copy(ent[12:], tmp)
	body := swapped[:tl-8]
	binary.LittleEndian.PutUint64(swapped[tl-8:], xxh3.Hash(body))
	if _, err := r.decodeFrameTable(e, bytes.Clone(swapped[:tl]), nil); err != nil {
		t.Fatalf("test bug: the swapped table does not decode: %v", err)
	}
	err = r.writeFramed(ctx, put(PackID{2}, swapped), restoreWriter{w: make(sliceTarget, len(raw))}, 0, int64(len(raw)), &frameBuffers{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "does not hash to its ID") {
		t.Fatalf("writeFramed of swapped frames: %v, want the chunk ID mismatch", err)
	}
}

// TestFrameCache: a read keeps the frames it covers in part, so reading
// them again needs no store; frames it covers whole go straight to the
// reader and are not kept, and other frames still need the stores.
func TestFrameCache(t *testing.T) {
	ctx := context.Background()
	r, err := Init(ctx, t.TempDir(), InitOptions{BlockSize: 256 << 10, PackSize: 1 << 20}, nil, Options{NoSync: true, FrameSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := randomData(12, 1<<20)
	cp, err := r.Backup(ctx, newMemSource("v", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.OpenCheckpoint(ctx, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	read := func(off, n int64) error {
		got := make([]byte, n)
		if _, err := rd.ReadAt(got, off); err != nil {
			return err
		}
		if !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("read at %d differs", off)
		}
		return nil
	}
	const (
		hot     = 2*256<<10 + 5*16<<10 + 100 // block 2, frame 5
		aligned = 3*256<<10 + 4*16<<10       // block 3, frames 4 and 5
	)
	if err := read(hot, 4096); err != nil {
		t.Fatal(err)
	}
	if err := read(aligned, 32<<10); err != nil {
		t.Fatal(err)
	}
	for _, b := range []int64{2, 3} {
		ref, _ := rd.bm.Lookup(b)
		if _, ok := r.tables.Get(chunkPlace{rd.bm.Packs[ref.Pack], ref.ID}); !ok {
			t.Errorf("block %d: frame table not kept after a read", b)
		}
	}
	if err := os.RemoveAll(filepath.Join(r.dir, "shards")); err != nil {
		t.Fatal(err)
	}
	if err := read(hot, 4096); err != nil {
		t.Fatalf("second read of a decoded frame went to the stores: %v", err)
	}
	if err := read(hot+16<<10, 4096); err == nil {
		t.Fatal("a frame never read came from nowhere: the stores are gone")
	}
	if err := read(aligned, 4096); err == nil {
		t.Fatal("a frame read whole was kept in the frame cache")
	}
}

// TestConfigVersions: both formats open; a version from a newer cairn (or
// none) is refused as unsupported, naming what this cairn reads.
func TestConfigVersions(t *testing.T) {
	for _, tc := range []struct {
		version int
		ok      bool
	}{{0, false}, {1, true}, {2, true}, {3, false}} {
		c := Config{Version: tc.version, ID: "x", BlockSize: 1 << 20, PackSize: 32 << 20, DataShards: 4, ParityShards: 2,
			Compression: "zstd", IDKey: make([]byte, 32)}
		err := c.validate()
		if (err == nil) != tc.ok || (err != nil && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "reads 1 to 2"))) {
			t.Errorf("version %d: %v, want ok=%v (or unsupported, naming 1 to 2)", tc.version, err, tc.ok)
		}
	}
	// New repositories are of the current format, and write frames.
	r := testRepository(t)
	if v := r.Config().Version; v != configVersion || r.frameShift != defaultFrameShift {
		t.Fatalf("a new repository is at format %d, frame shift %d; want %d, %d", v, r.frameShift, configVersion, defaultFrameShift)
	}
}

// TestCoversFrame: a read that covers no frame whole is taken for a random
// one (store.Scattered), whatever its length.
func TestCoversFrame(t *testing.T) {
	const fs = 128 << 10
	for _, tc := range []struct {
		off, end, raw int64
		want          bool
	}{
		{0, 4096, 4 << 20, false},
		{fs - 4096, fs + 4096, 4 << 20, false}, // across a boundary, neither whole
		{0, fs, 4 << 20, true},
		{100, 2*fs + 1, 4 << 20, true}, // frame 1 whole
		{100, 2*fs - 1, 4 << 20, false},
		{fs, fs + 1000, fs + 1000, true}, // the short last frame, whole
		{fs + 1, fs + 1000, fs + 1000, false},
		{0, 4096, 4096, true}, // a chunk of one short frame
	} {
		if got := coversFrame(tc.off, tc.end, tc.raw, fs); got != tc.want {
			t.Errorf("coversFrame(%d, %d, raw %d) = %v, want %v", tc.off, tc.end, tc.raw, got, tc.want)
		}
	}
}
