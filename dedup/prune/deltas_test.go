package prune

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"cairn/dedup/pack"
)

func chunk(b byte) pack.ChunkID { return pack.ChunkID{b} }

func setOf(ids ...pack.ChunkID) map[pack.ChunkID]struct{} {
	s := make(map[pack.ChunkID]struct{})
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

func TestReleasable(t *testing.T) {
	a, b, c := chunk(1), chunk(2), chunk(3)
	delta := func(n byte, borrowed int64, refs ...pack.ChunkID) liveDelta {
		return liveDelta{loc: pack.Loc{Entry: pack.Entry{ID: chunk(100 + n)}}, refs: refs, borrowed: borrowed}
	}
	pages := map[pack.ChunkID]int64{a: 1024, b: 1024, c: 16}
	tests := []struct {
		name   string
		deltas []liveDelta
		only   map[pack.ChunkID]struct{}
		want   map[pack.ChunkID]struct{}
	}{
		{"nothing referenced by deltas alone", []liveDelta{delta(1, 512, a)}, setOf(), setOf()},
		{"one delta, half the pages: 2·cost = pages frees", []liveDelta{delta(1, 512, a)}, setOf(a), setOf(a)},
		{"one delta, just over half: kept", []liveDelta{delta(1, 513, a)}, setOf(a), setOf()},
		{"two deltas add up", []liveDelta{delta(1, 300, a), delta(2, 300, a)}, setOf(a), setOf()},
		{"two small deltas still pay", []liveDelta{delta(1, 200, a), delta(2, 312, a)}, setOf(a), setOf(a)},
		{"a chunk a manifest names is never weighed", []liveDelta{delta(1, 1, a, b)}, setOf(b), setOf(b)},
		{"each chunk weighed by its own pages", []liveDelta{delta(1, 10, a, c)}, setOf(a, c), setOf(a)},
		{"a chunk the index does not know stays", []liveDelta{delta(1, 1, chunk(9))}, setOf(chunk(9)), setOf()},
		{"no deltas", nil, setOf(a), setOf()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := releasable(tt.deltas, tt.only, func(id pack.ChunkID) (int64, bool, error) {
				n, ok := pages[id]
				return n, ok, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("released %v, want %v", slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(tt.want)))
			}
		})
	}
}

func TestReleasableLookupError(t *testing.T) {
	boom := errors.New("index down")
	_, err := releasable([]liveDelta{{refs: []pack.ChunkID{chunk(1)}, borrowed: 1}}, setOf(chunk(1)),
		func(pack.ChunkID) (int64, bool, error) { return 0, false, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want the lookup's", err)
	}
}

func TestUsersOf(t *testing.T) {
	d1 := liveDelta{loc: pack.Loc{Entry: pack.Entry{ID: chunk(101)}}, refs: []pack.ChunkID{chunk(1), chunk(2)}}
	d2 := liveDelta{loc: pack.Loc{Entry: pack.Entry{ID: chunk(102)}}, refs: []pack.ChunkID{chunk(2)}}
	d3 := liveDelta{loc: pack.Loc{Entry: pack.Entry{ID: chunk(103)}}, refs: []pack.ChunkID{chunk(3)}}
	got := usersOf([]liveDelta{d1, d2, d3}, setOf(chunk(1), chunk(2)))
	if len(got) != 2 || got[0].ID != chunk(101) || got[1].ID != chunk(102) {
		t.Fatalf("users %v: want the two deltas over chunks 1 and 2, each once", got)
	}
	if got := usersOf([]liveDelta{d1}, nil); got != nil {
		t.Fatalf("users %v of nothing released", got)
	}
}
