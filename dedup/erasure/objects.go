// Package erasure stores objects erasure-coded across k+m shard stores
// (docs/format.md §8): the layer under packs and manifests.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/reedsolomon"
	"golang.org/x/sync/errgroup"

	"cairn/dedup/store"
	"cairn/internal/bigbuf"
	"cairn/internal/lru"
)

// Objects stores objects erasure-coded across k+m shard stores: the
// object is cut into k equal data shards (the last zero-padded), m parity
// shards are computed, and shard i goes to store i under the same
// name. Any k intact shards give the object back. Reed–Solomon works column
// by column, so any byte range can be rebuilt from the same range of k other
// shards: a damaged shard costs a read of that range only, not the object.
type Objects struct {
	k, m      int
	enc       reedsolomon.Encoder // nil when m == 0
	stores    []store.Store
	blockSize int
	headers   *lru.Cache[shardKey, *ShardHeader]
	maxLen    func(name string) int64
}

type shardKey struct {
	name  string
	index int
}

// checksumBlock is the granularity of shard checksums: small enough that a
// 4 MiB chunk read verifies little more than it needs, large enough that the
// table stays tiny (1 KiB per 8 MiB shard).
const checksumBlock = 64 << 10

// HeaderCache is how many shard headers an Objects keeps.
const HeaderCache = 16384

// New returns the objects of stores, k data and m parity shards each.
// maxLen bounds the length a shard header may claim for an object of that
// name, so that a damaged header costs an error, not memory.
func New(k, m int, stores []store.Store, maxLen func(name string) int64) (*Objects, error) {
	if len(stores) != k+m {
		return nil, fmt.Errorf("%d data + %d parity shards need %d shard stores, have %d", k, m, k+m, len(stores))
	}
	c := &Objects{k: k, m: m, stores: stores, blockSize: checksumBlock, headers: lru.New[shardKey, *ShardHeader](HeaderCache), maxLen: maxLen}
	if m > 0 {
		// Parallelism is the caller's choice: packs are encoded by several
		// uploaders at once, so each encode runs on one goroutine.
		enc, err := reedsolomon.New(k, m, reedsolomon.WithMaxGoroutines(1))
		if err != nil {
			return nil, fmt.Errorf("reed-solomon %d+%d: %w", k, m, err)
		}
		c.enc = enc
	}
	return c, nil
}

func (c *Objects) shardLen(objectLen int64) int64 {
	return (objectLen + int64(c.k) - 1) / int64(c.k)
}

// encode returns the k+m shard objects of data, the content of object name.
func (c *Objects) Encode(name string, data []byte, pool *bigbuf.Pool) ([][]byte, error) {
	sl := int(c.shardLen(int64(len(data))))
	// Each shard object is allocated whole and its data region filled in
	// place (data shards by one copy, parity by the encoder), so a pack is
	// copied once on its way to the stores.
	objs := make([][]byte, c.k+c.m)
	shards := make([][]byte, c.k+c.m)
	for i := range objs {
		objs[i] = pool.Get(shardObjectLen(sl, c.blockSize))
		shards[i] = objs[i][len(objs[i])-sl:]
		if i < c.k {
			lo, hi := min(i*sl, len(data)), min((i+1)*sl, len(data))
			n := copy(shards[i], data[lo:hi])
			clear(shards[i][n:]) // the last data shard's padding
		}
	}
	if c.enc != nil && sl > 0 {
		if err := c.enc.Encode(shards); err != nil {
			return nil, fmt.Errorf("erasure-code: %w", err)
		}
	}
	tag := objectTag(name)
	for i, obj := range objs {
		sealShard(obj, sl, c.k, c.m, i, int64(len(data)), c.blockSize, tag)
	}
	return objs, nil
}

// put writes all k+m shards of data under name and returns the bytes written.
func (c *Objects) Put(ctx context.Context, name string, data []byte) (int64, error) {
	return c.PutPooled(ctx, name, data, nil)
}

// putPooled is put with its shard objects from pool, and given back to it.
func (c *Objects) PutPooled(ctx context.Context, name string, data []byte, pool *bigbuf.Pool) (int64, error) {
	objs, err := c.Encode(name, data, pool)
	if err != nil {
		return 0, err
	}
	// Stores do not keep what Put is given (store.Store's contract).
	defer func() {
		for _, obj := range objs {
			pool.Put(obj)
		}
	}()
	var total int64
	g, gctx := errgroup.WithContext(ctx)
	for i, obj := range objs {
		total += int64(len(obj))
		g.Go(func() error {
			if err := c.stores[i].Put(gctx, name, obj); err != nil {
				return fmt.Errorf("write shard %d of %s to %s: %w", i, name, c.stores[i], err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return total, nil
}

// delete removes every shard of name. Missing shards are not an error.
func (c *Objects) Delete(ctx context.Context, name string) error {
	var errs []error
	for i, s := range c.stores {
		c.headers.Remove(shardKey{name, i})
		if err := s.Delete(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("delete shard %d of %s: %w", i, name, err))
		}
	}
	return errors.Join(errs...)
}

// header returns the verified header of shard i of name. Nothing the
// header claims sizes a read before it is checked against the shard's size
// in its store and the largest object of name's kind, so a damaged or
// hostile length costs an error, not memory.
func (c *Objects) Header(ctx context.Context, name string, i int) (*ShardHeader, error) {
	key := shardKey{name, i}
	if h, ok := c.headers.Get(key); ok {
		return h, nil
	}
	h, err := c.readHeader(ctx, name, i)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("shard %d of %s: %w", i, name, err)
		}
		return nil, err
	}
	c.headers.Add(key, h, 1)
	return h, nil
}

func (c *Objects) readHeader(ctx context.Context, name string, i int) (*ShardHeader, error) {
	fixed := make([]byte, shardHeaderSize)
	if err := c.stores[i].ReadAt(ctx, name, fixed, 0); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("shorter than a shard header: %w", ErrCorrupt)
		}
		return nil, err
	}
	h, err := parseShardFixed(fixed)
	if err != nil {
		return nil, err
	}
	if limit := c.limit(name); h.ObjectLen > limit {
		return nil, fmt.Errorf("header claims an object of %d bytes, more than the %d an object of its kind may have: %w",
			h.ObjectLen, limit, ErrCorrupt)
	}
	size, err := c.stores[i].Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if want := h.DataOffset() + h.ShardLen; size != want {
		return nil, fmt.Errorf("shard of %d bytes, its header says %d: %w", size, want, ErrCorrupt)
	}
	prefix := make([]byte, h.DataOffset())
	copy(prefix, fixed)
	if err := c.stores[i].ReadAt(ctx, name, prefix[shardHeaderSize:], shardHeaderSize); err != nil {
		return nil, err
	}
	if h, err = ParseShardPrefix(prefix); err != nil {
		return nil, err
	}
	if h.Index != i || h.K != c.k || h.M != c.m {
		return nil, fmt.Errorf("claims to be shard %d of %d+%d: %w", h.Index, h.K, h.M, ErrCorrupt)
	}
	if !h.belongsTo(name) {
		return nil, fmt.Errorf("belongs to another object (object tag %08x, want %08x): %w",
			h.Tag, objectTag(name), ErrCorrupt)
	}
	return h, nil
}

// maxObject bounds any object's length, whatever maxLen says.
const maxObject = 1 << 40

func (c *Objects) limit(name string) int64 {
	if c.maxLen == nil {
		return maxObject
	}
	return min(maxObject, c.maxLen(name))
}

// Forget drops what is cached of shard i of name: the next read looks at
// the store.
func (c *Objects) Forget(name string, i int) { c.headers.Remove(shardKey{name, i}) }

// ForgetObject drops what is cached of every shard of name.
func (c *Objects) ForgetObject(name string) {
	for i := range c.stores {
		c.Forget(name, i)
	}
}

// anyHeader returns the header of the first readable shard; all shards of an
// object agree on its length.
func (c *Objects) anyHeader(ctx context.Context, name string) (*ShardHeader, error) {
	var errs []error
	for i := range c.stores {
		h, err := c.Header(ctx, name, i)
		if err == nil {
			return h, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	if allNotFound(errs) {
		return nil, fmt.Errorf("%s: %w", name, store.ErrNotFound)
	}
	return nil, fmt.Errorf("no readable shard of %s: %w", name, errors.Join(errs...))
}

func allNotFound(errs []error) bool {
	for _, err := range errs {
		if !errors.Is(err, store.ErrNotFound) {
			return false
		}
	}
	return len(errs) > 0
}

// length returns the logical length of the object.
func (c *Objects) Length(ctx context.Context, name string) (int64, error) {
	h, err := c.anyHeader(ctx, name)
	if err != nil {
		return 0, err
	}
	return h.ObjectLen, nil
}

// readShard reads and verifies the block-aligned range [a,b) of shard i.
func (c *Objects) ReadShard(ctx context.Context, name string, i int, a, b int64) ([]byte, error) {
	return c.readShardInto(ctx, name, i, a, b, nil)
}

// readShardInto is readShard into buf, which is used when large enough.
func (c *Objects) readShardInto(ctx context.Context, name string, i int, a, b int64, buf []byte) ([]byte, error) {
	h, err := c.Header(ctx, name, i)
	if err != nil {
		return nil, err
	}
	if b > h.ShardLen {
		return nil, fmt.Errorf("range %d-%d beyond shard length %d: %w", a, b, h.ShardLen, ErrCorrupt)
	}
	if int64(cap(buf)) >= b-a {
		buf = buf[:b-a]
	} else {
		buf = bigbuf.Make(int(b - a))
	}
	if err := c.stores[i].ReadAt(ctx, name, buf, h.DataOffset()+a); err != nil {
		return nil, err
	}
	if bad := h.verifyRange(a, buf); bad >= 0 {
		return nil, fmt.Errorf("shard %d of %s block %d: checksum mismatch: %w", i, name, bad, ErrCorrupt)
	}
	return buf, nil
}

// readAt returns n bytes of the object starting at off, reading only the data
// shards that hold them and rebuilding from parity where one fails. The
// result is the caller's.
func (c *Objects) ReadAt(ctx context.Context, name string, off, n int64) ([]byte, error) {
	return c.ReadAtInto(ctx, name, off, n, &ReadBuffers{})
}

// ReadBuffers are the reusable buffers of readAtInto.
type ReadBuffers struct{ shard, out []byte }

// readAtInto is readAt into rb's buffers: the result aliases one of them
// and is valid until their next use. A range within one shard (a chunk,
// almost always) is not copied out of the shard read.
func (c *Objects) ReadAtInto(ctx context.Context, name string, off, n int64, rb *ReadBuffers) ([]byte, error) {
	h, err := c.anyHeader(ctx, name)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 || off+n > h.ObjectLen {
		return nil, fmt.Errorf("read %s at %d+%d beyond its length %d: %w", name, off, n, h.ObjectLen, ErrCorrupt)
	}
	sl := h.ShardLen
	out := rb.out[:0]
	for pos := off; pos < off+n; {
		j := int(pos / sl)
		x := pos - int64(j)*sl
		y := min(sl, off+n-int64(j)*sl)
		bs := int64(c.blockSize)
		a, b := x/bs*bs, min((y+bs-1)/bs*bs, sl)
		data, err := c.readShardInto(ctx, name, j, a, b, rb.shard)
		if err == nil {
			rb.shard = data
		} else {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			all, rerr := c.reconstructRange(ctx, name, a, b, sl)
			if rerr != nil {
				return nil, fmt.Errorf("%v; rebuilding from parity: %w", err, rerr)
			}
			data = all[j]
		}
		if pos == off && int64(j)*sl+y == off+n {
			return data[x-a : y-a], nil // the whole range, in one shard
		}
		out = append(out, data[x-a:y-a]...)
		pos = int64(j)*sl + y
	}
	rb.out = out
	return out, nil
}

// reconstructRange reads [a,b) of every shard and returns the k data shard
// ranges, rebuilt from parity where shards are missing or corrupt.
func (c *Objects) reconstructRange(ctx context.Context, name string, a, b, shardLen int64) ([][]byte, error) {
	if b > shardLen {
		b = shardLen
	}
	shards := make([][]byte, c.k+c.m)
	errs := make([]error, c.k+c.m)
	g, gctx := errgroup.WithContext(ctx)
	for i := range shards {
		g.Go(func() error {
			shards[i], errs[i] = c.ReadShard(gctx, name, i, a, b)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	good := 0
	var bad []string
	for i, err := range errs {
		if err == nil {
			good++
		} else {
			bad = append(bad, fmt.Sprintf("shard %d: %v", i, err))
		}
	}
	if good < c.k {
		if good == 0 && allNotFound(errs) {
			// Deleted meanwhile (a checkpoint forgotten, a pack pruned):
			// gone, not damaged.
			return nil, fmt.Errorf("%s: no shard left: %w", name, store.ErrNotFound)
		}
		return nil, fmt.Errorf("%s: only %d of %d shards readable, need %d (%s): %w",
			name, good, c.k+c.m, c.k, strings.Join(bad, "; "), ErrCorrupt)
	}
	if good < c.k+c.m {
		if err := c.enc.ReconstructData(shards); err != nil {
			return nil, fmt.Errorf("reconstruct %s: %w", name, err)
		}
	}
	return shards[:c.k], nil
}

// get returns the whole object.
func (c *Objects) Get(ctx context.Context, name string) ([]byte, error) {
	n, err := c.Length(ctx, name)
	if err != nil {
		return nil, err
	}
	return c.ReadAt(ctx, name, 0, n)
}

// shardCount returns how many shard stores hold a shard of name, and the
// first error other than "not found" (a store that cannot answer).
func (c *Objects) ShardCount(ctx context.Context, name string) (int, error) {
	n := 0
	var firstErr error
	for i, s := range c.stores {
		_, err := s.Stat(ctx, name)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound) && firstErr == nil:
			firstErr = fmt.Errorf("stat %s in shard store %d: %w", name, i, err)
		}
	}
	return n, firstErr
}

// list calls fn once for each object name found in any shard store under
// prefix, with the number of stores holding a shard of it.
func (c *Objects) List(ctx context.Context, prefix string, fn func(name string, shards int) error) error {
	seen := make(map[string]int)
	for i, s := range c.stores {
		err := s.List(ctx, prefix, func(name string, _ int64) error {
			seen[name]++
			return nil
		})
		if err != nil {
			return fmt.Errorf("list %s in shard store %d: %w", prefix, i, err)
		}
	}
	for name, n := range seen {
		if err := fn(name, n); err != nil {
			return err
		}
	}
	return nil
}
