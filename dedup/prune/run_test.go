package prune

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn/dedup/pack"
)

const (
	flagDelta = 1 << 2 // as the repository marks a delta blob
	packBytes = 1000   // shard bytes of every fake pack
)

// fakePack is a pack of fakeRepo.
type fakePack struct {
	id       pack.ID
	entries  []pack.Entry
	complete bool
	unread   bool // its header cannot be read
	indexed  bool
	created  time.Time
	chunks   int // as indexed
}

// fakeRepo is a repository in memory that records, in order, every call
// that reads a phase's input or changes something.
type fakeRepo struct {
	now       time.Time
	manifests []pack.ChunkID // every chunk a committed manifest names
	deltas    map[pack.ChunkID]fakeDelta

	mu       sync.Mutex
	packs    []*fakePack
	index    map[pack.ChunkID]Indexed
	calls    []string
	deleted  map[pack.ID]map[pack.ChunkID]struct{} // with the copied set it was given
	recorded []pack.ID
	rewrote  []pack.ChunkID
	fence    time.Time
	logs     []string
}

type fakeDelta struct {
	refs     []pack.ChunkID
	borrowed int64
}

func (f *fakeRepo) call(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeRepo) Now() time.Time { return f.now }

func (f *fakeRepo) Logf(format string, args ...any) {
	f.mu.Lock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeRepo) MarkLive(_ context.Context, mark func(pack.ChunkID) error) error {
	f.call("MarkLive")
	for _, id := range f.manifests {
		if err := mark(id); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeRepo) Packs(context.Context) ([]Pack, error) {
	f.call("Packs")
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Pack
	for _, p := range f.packs {
		shards := 6
		if !p.complete {
			shards = 3
		}
		out = append(out, Pack{ID: p.id, Shards: shards, Complete: p.complete})
	}
	return out, nil
}

func (f *fakeRepo) pack(p pack.ID) *fakePack {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fp := range f.packs {
		if fp.id == p {
			return fp
		}
	}
	return nil
}

func (f *fakeRepo) Header(_ context.Context, p pack.ID) ([]pack.Entry, error) {
	fp := f.pack(p)
	if fp == nil || fp.unread {
		return nil, fmt.Errorf("pack %s: unreadable", p)
	}
	return fp.entries, nil
}

func (f *fakeRepo) IsDelta(e pack.Entry) bool { return e.Flags&flagDelta != 0 }

func (f *fakeRepo) Lookup(id pack.ChunkID) (Indexed, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.index[id]
	return at, ok, nil
}

func (f *fakeRepo) ReadDelta(_ context.Context, loc pack.Loc) ([]pack.ChunkID, int64, error) {
	d, ok := f.deltas[loc.ID]
	if !ok {
		return nil, 0, fmt.Errorf("chunk %s is no delta", loc.ID)
	}
	return d.refs, d.borrowed, nil
}

// RewriteWhole stores each user whole in a new pack and indexes it there.
func (f *fakeRepo) RewriteWhole(_ context.Context, users []pack.Loc) (int64, error) {
	f.call("RewriteWhole")
	np := &fakePack{id: pack.NewID(), complete: true, indexed: true, created: f.now}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range users {
		f.rewrote = append(f.rewrote, u.ID)
		e := pack.Entry{ID: u.ID, StoredLen: 100}
		np.entries = append(np.entries, e)
		f.index[u.ID] = Indexed{Loc: pack.Loc{Pack: np.id, Entry: e}, Pages: 1}
	}
	f.packs = append(f.packs, np)
	return 30, nil
}

func (f *fakeRepo) WriteMarker(_ context.Context, started time.Time) error {
	f.call("WriteMarker")
	if !started.Equal(f.now) {
		return fmt.Errorf("marker for a prune started at %v, want %v", started, f.now)
	}
	return nil
}

func (f *fakeRepo) RemoveIncompleteManifests(_ context.Context, fence time.Time, dry bool) (int, error) {
	f.mu.Lock()
	f.fence = fence
	f.mu.Unlock()
	if dry {
		f.call("RemoveIncompleteManifests (dry)")
	} else {
		f.call("RemoveIncompleteManifests")
	}
	return 1, nil
}

func (f *fakeRepo) PackFacts(p pack.ID) (PackFacts, error) {
	fp := f.pack(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp == nil || !fp.indexed {
		return PackFacts{}, nil
	}
	return PackFacts{Indexed: true, Created: fp.created, Chunks: fp.chunks}, nil
}

func (f *fakeRepo) RecordPack(p pack.ID, created time.Time, _ int) error {
	f.call("RecordPack %s", p)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, p)
	return nil
}

func (f *fakeRepo) PackBytes(context.Context, pack.ID) int64 { return packBytes }

func (f *fakeRepo) CopyLive(_ context.Context, batch []Compaction) ([]Copied, int64, error) {
	f.call("CopyLive")
	out := make([]Copied, len(batch))
	for i, c := range batch {
		out[i].Chunks = make(map[pack.ChunkID]struct{})
		for j, e := range c.Entries {
			if c.Live[j] {
				out[i].Chunks[e.ID] = struct{}{}
			}
		}
	}
	return out, 50, nil
}

func (f *fakeRepo) DeletePack(_ context.Context, p pack.ID, _ []pack.Entry, copied map[pack.ChunkID]struct{}) (bool, int64, error) {
	f.call("DeletePack %s", p)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted[p] = copied
	return true, packBytes, nil
}

// fixture: what each pack is for, and the repository holding them.
type fixture struct {
	repo                               *fakeRepo
	dead, sparse, mostly, young, unidx pack.ID
	broken, deltaRefd                  pack.ID
	sparseLive                         pack.ChunkID
	delta                              pack.ChunkID
}

func newFixture() *fixture {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-2 * time.Hour)
	next := byte(0)
	id := func() pack.ChunkID { next++; return pack.ChunkID{next} }
	entries := func(n int) []pack.Entry {
		out := make([]pack.Entry, n)
		for i := range out {
			out[i] = pack.Entry{ID: id(), StoredLen: 100}
		}
		return out
	}
	fx := &fixture{}
	f := &fakeRepo{
		now:     now,
		deltas:  make(map[pack.ChunkID]fakeDelta),
		index:   make(map[pack.ChunkID]Indexed),
		deleted: make(map[pack.ID]map[pack.ChunkID]struct{}),
	}
	fx.repo = f
	add := func(fp *fakePack) pack.ID {
		fp.id = pack.NewID()
		for _, e := range fp.entries {
			f.index[e.ID] = Indexed{Loc: pack.Loc{Pack: fp.id, Entry: e}, Pages: 25}
		}
		f.packs = append(f.packs, fp)
		return fp.id
	}
	// Nothing live: deleted.
	fx.dead = add(&fakePack{entries: entries(2), complete: true, indexed: true, created: old})
	// 1 of 10 live: compacted.
	sparse := entries(10)
	fx.sparseLive = sparse[0].ID
	fx.sparse = add(&fakePack{entries: sparse, complete: true, indexed: true, created: old})
	// 3 of 4 live, one of them a delta over a chunk no manifest names: kept.
	mostly := entries(4)
	mostly[0].Flags = flagDelta
	fx.delta = mostly[0].ID
	fx.mostly = add(&fakePack{entries: mostly, complete: true, indexed: true, created: old})
	// Dead but younger than the fence: kept for grace.
	fx.young = add(&fakePack{entries: entries(1), complete: true, indexed: true, created: now.Add(-time.Minute)})
	// Dead and unknown to the index: recorded as new, kept for grace.
	fx.unidx = add(&fakePack{entries: entries(1), complete: true})
	// Too few shards to read, but once complete: kept for repair.
	fx.broken = add(&fakePack{unread: true, indexed: true, chunks: 3, created: old})
	// Only the delta keeps its one chunk alive, for 2 of its 25 pages.
	refd := entries(1)
	fx.deltaRefd = add(&fakePack{entries: refd, complete: true, indexed: true, created: old})
	f.deltas[fx.delta] = fakeDelta{refs: []pack.ChunkID{refd[0].ID}, borrowed: 2}
	f.manifests = []pack.ChunkID{fx.sparseLive, mostly[0].ID, mostly[1].ID, mostly[2].ID}
	return fx
}

func run(t *testing.T, f *fakeRepo, o Options) *Report {
	t.Helper()
	o.TempDir = t.TempDir()
	rep, err := Run(context.Background(), f, o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if left, _ := os.ReadDir(o.TempDir); len(left) != 0 {
		t.Errorf("mark set left behind: %v", left)
	}
	return rep
}

// TestRunPhases runs a prune over packs of every kind: the report, what is
// deleted, and that no phase changes anything before the ones it depends
// on have finished.
func TestRunPhases(t *testing.T) {
	fx := newFixture()
	f := fx.repo
	rep := run(t, f, Options{Grace: time.Hour})

	want := Report{
		PacksTotal:                 8, // and the one the delta was rewritten to
		PacksDeleted:               2, // dead, and the one the delta alone kept
		PacksCompacted:             1,
		PacksKeptGrace:             2,
		ManifestsIncompleteRemoved: 1,
		// -30 rewriting the delta, -50 compacting, +1000 per pack gone
		BytesFreed:      3*packBytes - 30 - 50,
		ChunksLive:      4, // sparse's 1, mostly's 2 whole ones, the rewritten delta
		ChunksDead:      16,
		DeltasRewritten: 1,
	}
	if *rep != want {
		t.Errorf("report\n %+v, want\n %+v", *rep, want)
	}
	wantGone := []pack.ID{fx.dead, fx.deltaRefd, fx.sparse}
	if len(f.deleted) != len(wantGone) {
		t.Errorf("deleted %v, want dead %s, delta-referenced %s and sparse %s", slices.Collect(maps.Keys(f.deleted)), fx.dead, fx.deltaRefd, fx.sparse)
	}
	for _, p := range wantGone {
		if _, ok := f.deleted[p]; !ok {
			t.Errorf("pack %s not deleted", p)
		}
	}
	if copied := f.deleted[fx.sparse]; len(copied) != 1 || copied[fx.sparseLive] != struct{}{} {
		t.Errorf("sparse pack deleted with copied %v: want its one live chunk", copied)
	}
	if !slices.Equal(f.recorded, []pack.ID{fx.unidx}) {
		t.Errorf("recorded %v, want only the unindexed pack %s", f.recorded, fx.unidx)
	}
	if !slices.Equal(f.rewrote, []pack.ChunkID{fx.delta}) {
		t.Errorf("rewrote %v, want the delta %s", f.rewrote, fx.delta)
	}
	if !slices.ContainsFunc(f.logs, func(l string) bool {
		return strings.Contains(l, fx.broken.String()+" has 3 shards but was once complete")
	}) {
		t.Errorf("no log of the pack kept for repair in %q", f.logs)
	}
	if wantFence := f.now.Add(-time.Hour); !f.fence.Equal(wantFence) {
		t.Errorf("fence %v, want %v", f.fence, wantFence)
	}

	// Phase order: each step starts after the one before it has ended.
	at := func(call string, nth int) int {
		for i, c := range f.calls {
			if c == call {
				if nth == 0 {
					return i
				}
				nth--
			}
		}
		t.Fatalf("no call %q (#%d) in %q", call, nth, f.calls)
		return -1
	}
	order := []int{
		at("MarkLive", 0),
		at("Packs", 0), // the delta pass lists the packs
		at("RewriteWhole", 0),
		at("WriteMarker", 0),
		at("RemoveIncompleteManifests", 0),
		at("Packs", 1), // the sweep lists them again
		at("DeletePack "+fx.dead.String(), 0),
		at("CopyLive", 0),
		at("DeletePack "+fx.sparse.String(), 0),
	}
	if !slices.IsSorted(order) {
		t.Errorf("phases out of order: %q", f.calls)
	}
	if first := at("RecordPack "+fx.unidx.String(), 0); first < order[5] {
		t.Errorf("pack recorded before the sweep: %q", f.calls)
	}
}

// TestRunDryRun: a dry run reports what the prune would do and calls
// nothing that changes the repository.
func TestRunDryRun(t *testing.T) {
	f := newFixture().repo
	rep := run(t, f, Options{DryRun: true})
	want := Report{
		PacksTotal:                 7,
		PacksDeleted:               1, // the delta is not rewritten, so its reference stays
		PacksCompacted:             1,
		PacksKeptGrace:             2,
		ManifestsIncompleteRemoved: 1,
		BytesFreed:                 packBytes + packBytes*9/10,
		ChunksLive:                 5,
		ChunksDead:                 14,
		DeltasRewritten:            1,
	}
	if *rep != want {
		t.Errorf("report\n %+v, want\n %+v", *rep, want)
	}
	for _, c := range f.calls {
		switch c {
		case "MarkLive", "Packs", "RemoveIncompleteManifests (dry)":
		default:
			t.Errorf("dry run called %s", c)
		}
	}
	if len(f.deleted) != 0 || len(f.recorded) != 0 || len(f.rewrote) != 0 {
		t.Errorf("dry run changed the repository: deleted %v, recorded %v, rewrote %v", f.deleted, f.recorded, f.rewrote)
	}
}

// TestRunUnreadableManifest: a prune that cannot mark everything deletes
// nothing.
func TestRunUnreadableManifest(t *testing.T) {
	f := newFixture().repo
	boom := errors.New("manifest unreadable")
	rep, err := Run(context.Background(), markFails{f, boom}, Options{TempDir: t.TempDir()})
	if !errors.Is(err, boom) || rep != nil {
		t.Fatalf("run: %+v, %v; want the mark error and no report", rep, err)
	}
	if len(f.calls) != 0 {
		t.Fatalf("calls after a failed mark: %q", f.calls)
	}
}

type markFails struct {
	*fakeRepo
	err error
}

func (m markFails) MarkLive(context.Context, func(pack.ChunkID) error) error { return m.err }

// TestRunUnreadablePack: a complete pack whose header cannot be read may
// hold a live delta whose references would go unmarked, so the prune stops
// before it changes anything.
func TestRunUnreadablePack(t *testing.T) {
	fx := newFixture()
	f := fx.repo
	f.pack(fx.mostly).unread = true
	rep, err := Run(context.Background(), f, Options{Grace: -1, TempDir: t.TempDir()})
	if err == nil || rep != nil {
		t.Fatalf("run: %+v, %v; want an error and no report", rep, err)
	}
	for _, c := range f.calls {
		if c != "MarkLive" && c != "Packs" {
			t.Errorf("called %s after an unreadable pack", c)
		}
	}
}
