package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"testing"
)

// damageWords is what verify's output must mention when it finds damage.
var damageWords = regexp.MustCompile(`(?i)damage|missing|corrupt`)

// shardObjects groups the shard files of kind ("packs", "manifests") by
// object: name relative to a shard directory -> shard index -> file path.
func (e *env) shardObjects(kind string, shards int) (names []string, files map[string]map[int]string) {
	e.t.Helper()
	files = make(map[string]map[int]string)
	for i := range shards {
		dir := filepath.Join(e.repo, "shards", strconv.Itoa(i))
		for _, p := range e.shardFiles(kind) {
			rel, err := filepath.Rel(dir, p)
			if err != nil || !filepath.IsLocal(rel) {
				continue
			}
			if files[rel] == nil {
				files[rel] = make(map[int]string)
				names = append(names, rel)
			}
			files[rel][i] = p
		}
	}
	sort.Strings(names)
	return names, files
}

// shardPairs are the 15 ways to pick 2 of 6 shards, cycled through so that
// data and parity shards are both lost.
func shardPairs(n int) [][2]int {
	var p [][2]int
	for a := range n {
		for b := a + 1; b < n; b++ {
			p = append(p, [2]int{a, b})
		}
	}
	return p
}

// removeTwoShards deletes two shard files of every object of kind.
func (e *env) removeTwoShards(kind string) int {
	e.t.Helper()
	names, files := e.shardObjects(kind, 6)
	if len(names) == 0 {
		e.t.Fatalf("no %s in the repository", kind)
	}
	pairs := shardPairs(6)
	for j, name := range names {
		if len(files[name]) != 6 {
			e.t.Fatalf("%s %s has %d shard files, want 6", kind, name, len(files[name]))
		}
		for _, i := range pairs[j%len(pairs)] {
			if err := os.Remove(files[name][i]); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	return len(names)
}

// TestErasureCoding loses and corrupts shards of a 4+2 repository through
// the file system and checks restore, verify and repair through the CLI.
func TestErasureCoding(t *testing.T) {
	geometry := append([]string{"--data-shards", "4", "--parity-shards", "2"}, smallGeometry...)
	setup := func(t *testing.T) (*env, checkpoint, string) {
		t.Helper()
		e := newRepo(t, repoOpts{init: geometry})
		src := filepath.Join(e.scratch, "disk.img")
		writeFile(t, src, randomBytes(31, int(5*mib+4321)))
		cp := e.backup(src)
		if n := len(e.shardFiles("packs")); n < 6*3 {
			t.Fatalf("only %d pack shard files; want several packs of 6 shards", n)
		}
		return e, cp, fileHash(t, src)
	}
	// damagedThenRepaired runs the verify / repair / verify sequence.
	damagedThenRepaired := func(t *testing.T, e *env) {
		t.Helper()
		r := e.run("verify")
		if r.code == 0 {
			t.Fatalf("verify passed a damaged repository:\n%s", r)
		}
		if !damageWords.MatchString(r.stdout + r.stderr) {
			t.Errorf("verify failed without saying what is damaged:\n%s", r)
		}
		e.must("repair")
		if r := e.run("verify"); r.code != 0 {
			t.Fatalf("verify still fails after repair:\n%s", r)
		}
		if r := e.run("verify", "--deep"); r.code != 0 {
			t.Fatalf("verify --deep fails after repair:\n%s", r)
		}
	}

	t.Run("two shards of every pack lost", func(t *testing.T) {
		e, cp, want := setup(t)
		before := e.shardFiles("packs")
		n := e.removeTwoShards("packs")
		t.Logf("removed 2 of 6 shards of each of %d packs", n)
		e.checkRestore(cp.ID, want, "two shards lost")
		damagedThenRepaired(t, e)
		if after := e.shardFiles("packs"); !slices.Equal(after, before) {
			t.Errorf("after repair %d pack shard files, want the original %d", len(after), len(before))
		}
		e.checkRestore(cp.ID, want, "after repair")
	})

	t.Run("two shards of every manifest lost", func(t *testing.T) {
		e, cp, want := setup(t)
		e.removeTwoShards("manifests")
		if cps := e.checkpoints(); len(cps) != 1 || cps[0].ID != cp.ID {
			t.Fatalf("checkpoints with 4 of 6 manifest shards: %+v, want just %s", cps, cp.ID)
		}
		e.checkRestore(cp.ID, want, "manifest shards lost")
		damagedThenRepaired(t, e)
		e.checkRestore(cp.ID, want, "after repair")
	})

	t.Run("corrupt shard", func(t *testing.T) {
		e, cp, want := setup(t)
		names, files := e.shardObjects("packs", 6)
		victim := files[names[0]][1] // a data shard
		orig, err := os.ReadFile(victim)
		if err != nil {
			t.Fatal(err)
		}
		bad := slices.Clone(orig)
		for i := len(bad) / 2; i < len(bad)/2+64; i++ {
			bad[i] ^= 0xa5
		}
		writeFile(t, victim, bad)
		e.checkRestore(cp.ID, want, "one shard corrupt")
		damagedThenRepaired(t, e)
		if now, err := os.ReadFile(victim); err != nil || string(now) != string(orig) {
			t.Errorf("repair did not rewrite the corrupt shard %s to its original bytes (err %v)", victim, err)
		}
	})

	t.Run("three shards of a pack lost", func(t *testing.T) {
		e, cp, _ := setup(t)
		names, files := e.shardObjects("packs", 6)
		for _, i := range []int{0, 2, 5} {
			if err := os.Remove(files[names[0]][i]); err != nil {
				t.Fatal(err)
			}
		}
		r := e.mustFail("restore", cp.ID, "--to", filepath.Join(e.scratch, "out.img"))
		t.Logf("restore with 3 of 6 shards of a pack lost: %s", r.stderr)
		if r := e.run("verify"); r.code == 0 {
			t.Errorf("verify passed with a pack beyond repair:\n%s", r)
		}
		if r := e.run("repair"); r.code == 0 {
			t.Errorf("repair exited 0 with a pack beyond repair:\n%s", r)
		}
	})
}
