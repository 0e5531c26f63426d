package dedup

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"cairn/dedup/erasure"
	"cairn/internal/lru"
)

// openDamageRepo creates a k+m repository with 64 KiB blocks, 1 MiB packs
// and no chunk cache, so that every restore reads the shard stores.
func openDamageRepo(t *testing.T, k, m int, password []byte) *Repository {
	t.Helper()
	o := InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, DataShards: k, ParityShards: m, Password: password}
	r, err := Init(context.Background(), t.TempDir(), o, nil, Options{NoSync: true, Password: password, CacheBytes: 1})
	if err != nil {
		t.Fatalf("init %d+%d repository: %v", k, m, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dropHeaderCaches makes the next reads go to the stores for shard and pack
// headers and frame tables too. Tests only: it is not safe against concurrent readers.
func dropHeaderCaches(r *Repository) {
	r.headers = lru.New[PackID, []packEntry](4096)
	r.tables = lru.New[chunkPlace, []frame](frameTableCache)
	_ = r.obj.List(context.Background(), "", func(name string, _ int) error {
		r.obj.ForgetObject(name)
		return nil
	})
}

// shardPath is where the local store keeps shard i of object name.
func shardPath(r *Repository, i int, name string) string {
	return filepath.Join(r.Dir(), "shards", strconv.Itoa(i), filepath.FromSlash(name))
}

// objectNames lists packs and manifests, sorted.
func objectNames(t *testing.T, r *Repository, prefixes ...string) []string {
	t.Helper()
	var names []string
	for _, prefix := range prefixes {
		err := r.obj.List(context.Background(), prefix, func(name string, _ int) error {
			names = append(names, name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(names)
	return names
}

// snapshotShards reads every file under the shard stores.
func snapshotShards(t *testing.T, r *Repository) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(filepath.Join(r.Dir(), "shards"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[p], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameFiles(t *testing.T, want, got map[string][]byte) {
	t.Helper()
	for p, b := range want {
		if !bytes.Equal(got[p], b) {
			t.Errorf("%s differs after repair", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s appeared after repair", p)
		}
	}
}

// A damage changes one shard file; prefix is the problem Verify must report.
type damage struct {
	name   string
	prefix string
	apply  func(t *testing.T, path string)
}

func flipAt(off func(h *erasure.ShardHeader, size int64) int64) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := erasure.ParseShardPrefix(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b[off(h, int64(len(b)))] ^= 0x5a
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

var damages = []damage{
	{"delete", "missing", func(t *testing.T, p string) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}},
	{"truncate", "corrupt", func(t *testing.T, p string) {
		fi, err := os.Stat(p)
		if err == nil {
			err = os.Truncate(p, fi.Size()/2)
		}
		if err != nil {
			t.Fatal(err)
		}
	}},
	{"flip data", "corrupt", flipAt(func(h *erasure.ShardHeader, _ int64) int64 { return h.DataOffset() + h.ShardLen/2 })},
	{"flip last byte", "corrupt", flipAt(func(_ *erasure.ShardHeader, size int64) int64 { return size - 1 })},
	{"flip magic", "corrupt", flipAt(func(*erasure.ShardHeader, int64) int64 { return 1 })},
	{"flip object length", "corrupt", flipAt(func(*erasure.ShardHeader, int64) int64 { return 8 })},
	{"flip shard length", "corrupt", flipAt(func(*erasure.ShardHeader, int64) int64 { return 20 })},
	{"flip header sum", "corrupt", flipAt(func(*erasure.ShardHeader, int64) int64 { return 33 })},
	{"flip checksum table", "corrupt", flipAt(func(h *erasure.ShardHeader, _ int64) int64 {
		return h.DataOffset() - 8*int64(len(h.Sums)-len(h.Sums)/2) + 3
	})},
}

// TestErasureDamage damages up to m shards of every pack and manifest:
// restores stay byte-exact, Verify reports exactly the damaged shards, and
// Repair rewrites them byte for byte.
func TestErasureDamage(t *testing.T) {
	ctx := context.Background()
	geometries := []struct {
		k, m int
		sets [][]int
	}{
		{4, 2, [][]int{{0, 1}, {2, 5}, {3, 4}}},
		{3, 1, [][]int{{0}, {3}, {1}}},
	}
	for _, g := range geometries {
		t.Run(strconv.Itoa(g.k)+"+"+strconv.Itoa(g.m), func(t *testing.T) {
			r := openDamageRepo(t, g.k, g.m, nil)
			data := randomData(11, 3<<20+4321)
			cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			objects := objectNames(t, r, "packs/", "manifests/")
			if len(objects) < 4 {
				t.Fatalf("want several packs and a manifest, have %v", objects)
			}
			clean := snapshotShards(t, r)
			for _, set := range g.sets {
				for _, d := range damages {
					t.Run(d.name+" "+joinInts(set), func(t *testing.T) {
						for _, name := range objects {
							for _, i := range set {
								d.apply(t, shardPath(r, i, name))
							}
						}
						dropHeaderCaches(r)
						if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
							t.Fatal("restore from damaged shards differs")
						}
						rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
						if err != nil {
							t.Fatal(err)
						}
						if rep.OK || len(rep.DamagedShards) != len(objects)*len(set) || len(rep.Unrecoverable) != 0 ||
							len(rep.MissingChunks) != 0 || len(rep.BadChunks) != 0 {
							t.Fatalf("verify report %+v, want exactly %d damaged shards", rep, len(objects)*len(set))
						}
						for _, sd := range rep.DamagedShards {
							if !slices.Contains(set, sd.Shard) || !strings.HasPrefix(sd.Problem, d.prefix) {
								t.Errorf("unexpected damage %+v", sd)
							}
						}
						fixed, err := r.Repair(ctx)
						if err != nil {
							t.Fatal(err)
						}
						if len(fixed.Rewritten) != len(rep.DamagedShards) || len(fixed.Unrecoverable) != 0 {
							t.Fatalf("repair %+v, want %d shards rewritten", fixed, len(rep.DamagedShards))
						}
						sameFiles(t, clean, snapshotShards(t, r))
						if rep, err := r.Verify(ctx, VerifyOptions{}); err != nil || !rep.OK {
							t.Fatalf("verify after repair: %+v, %v", rep, err)
						}
						dropHeaderCaches(r)
						if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
							t.Fatal("restore after repair differs")
						}
					})
				}
			}
		})
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return "shards " + strings.Join(s, ",")
}

// TestUnrecoverable damages m+1 shards of every pack: a restore fails with
// ErrCorrupt instead of returning wrong bytes, Verify lists every pack, and
// Repair leaves them alone.
func TestUnrecoverable(t *testing.T) {
	ctx := context.Background()
	atStart := flipAt(func(h *erasure.ShardHeader, _ int64) int64 { return h.DataOffset() })
	cases := []struct {
		name  string
		k, m  int
		apply func(*testing.T, string)
	}{
		{"4+2 delete", 4, 2, damages[0].apply},
		{"4+2 flip", 4, 2, atStart},
		{"3+1 delete", 3, 1, damages[0].apply},
		{"1+0 flip", 1, 0, atStart},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := openDamageRepo(t, c.k, c.m, nil)
			data := randomData(12, 3<<20)
			cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			packs := objectNames(t, r, "packs/")
			for _, name := range packs {
				for i := 0; i <= c.m; i++ {
					c.apply(t, shardPath(r, i, name))
				}
			}
			dropHeaderCaches(r)
			_, err = r.Restore(ctx, cp.ID, &memTarget{b: make([]byte, len(data))}, RestoreOptions{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore: %v, want ErrCorrupt", err)
			}
			rep, err := r.Verify(ctx, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || !slices.Equal(rep.Unrecoverable, packs) || len(rep.DamagedShards) != len(packs)*(c.m+1) {
				t.Fatalf("verify %+v, want every pack unrecoverable", rep)
			}
			before := snapshotShards(t, r)
			fixed, err := r.Repair(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(fixed.Rewritten) != 0 || !slices.Equal(fixed.Unrecoverable, packs) {
				t.Fatalf("repair %+v, want nothing rewritten and every pack listed", fixed)
			}
			sameFiles(t, before, snapshotShards(t, r))
		})
	}
}
