package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestTamperSwappedShards copies the shards of one pack over another's, as
// an operator mixing up shard files would. No command may say the
// repository is OK while a restore would fail, and repair must either
// rebuild the pack from its own shards or leave it alone.
func TestTamperSwappedShards(t *testing.T) {
	geometry := append([]string{"--data-shards", "4", "--parity-shards", "2"}, smallGeometry...)
	cases := []struct {
		name       string
		shards     []int
		repairable bool
	}{
		{"all six", []int{0, 1, 2, 3, 4, 5}, false},
		{"five of six", []int{0, 1, 2, 4, 5}, false},
		{"two of six", []int{1, 5}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newRepo(t, repoOpts{init: geometry})
			srcA, srcB := filepath.Join(e.scratch, "a.img"), filepath.Join(e.scratch, "b.img")
			writeFile(t, srcA, randomBytes(71, int(mib)))
			writeFile(t, srcB, randomBytes(72, int(mib)))
			cpA := e.backup(srcA)
			packsA, _ := e.shardObjects("packs", 6)
			cpB := e.backup(srcB)
			names, files := e.shardObjects("packs", 6)
			var packB string
			for _, n := range names {
				if !slices.Contains(packsA, n) {
					packB = n
				}
			}
			if len(packsA) == 0 || packB == "" {
				t.Fatalf("want a pack of each backup, have %v", names)
			}
			packA := packsA[0]
			for _, i := range c.shards {
				copyFile(t, files[packB][i], files[packA][i])
			}
			for _, deep := range []bool{false, true} {
				rep, r := e.verifyJSON(deep)
				if rep.OK || r.code == 0 {
					t.Fatalf("verify deep=%v says OK after shards %v of %s were replaced by %s's:\n%s", deep, c.shards, packA, packB, r)
				}
			}
			before := treeDigest(t, filepath.Join(e.repo, "shards"))
			r := e.run("repair")
			if c.repairable {
				if r.code != 0 {
					t.Fatalf("repair failed:\n%s", r)
				}
				for _, deep := range []bool{false, true} {
					if rep, r := e.verifyJSON(deep); !rep.OK {
						t.Fatalf("verify deep=%v after repair:\n%s", deep, r)
					}
				}
				e.checkRestore(cpA.ID, fileHash(t, srcA), "after repair")
			} else {
				if r.code == 0 {
					t.Errorf("repair exited 0 with a pack whose shards are another's:\n%s", r)
				}
				after := treeDigest(t, filepath.Join(e.repo, "shards"))
				for p, h := range before {
					if strings.Contains(p, filepath.Base(packA)) && after[p] != h {
						t.Errorf("repair rewrote %s from another pack's shards", p)
					}
				}
				for _, deep := range []bool{false, true} {
					if rep, r := e.verifyJSON(deep); rep.OK {
						t.Fatalf("verify deep=%v says OK after repair, though %s cannot be rebuilt:\n%s", deep, packA, r)
					}
				}
				out := filepath.Join(e.scratch, "a-restored.img")
				if r := e.run("restore", cpA.ID, "--to", out); r.code == 0 {
					t.Fatalf("restore of %s succeeded from another pack's shards:\n%s", cpA.ID, r)
				}
			}
			e.checkRestore(cpB.ID, fileHash(t, srcB), "the untouched checkpoint")
		})
	}
}

// TestTamperConfigCopy flips one byte in the config copy of each shard store
// in turn, and removes one: every command still runs, the warning names the
// damaged copy, verify reports it, and repair rewrites it.
func TestTamperConfigCopy(t *testing.T) {
	e := newRepo(t, repoOpts{init: append([]string{"--data-shards", "4", "--parity-shards", "2"}, smallGeometry...)})
	src := filepath.Join(e.scratch, "disk.img")
	writeFile(t, src, randomBytes(73, int(mib/2)))
	cp := e.backup(src)
	want := fileHash(t, src)
	good, err := os.ReadFile(filepath.Join(e.repo, "shards", "0", "config"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		for _, how := range []string{"flip", "remove"} {
			t.Run(how+" copy "+strconv.Itoa(i), func(t *testing.T) {
				p := filepath.Join(e.repo, "shards", strconv.Itoa(i), "config")
				if how == "flip" {
					b := slices.Clone(good)
					b[len(b)/2] ^= 0x20
					writeFile(t, p, b)
				} else if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				r := e.run("checkpoints", "--json")
				if r.code != 0 {
					t.Fatalf("one damaged config copy blocks the repository:\n%s", r)
				}
				named := fmt.Sprintf("shard store %d (", i)
				if !strings.Contains(r.stderr, named) {
					t.Errorf("warning does not name %q:\n%s", named, r)
				}
				for j := range 6 {
					if other := fmt.Sprintf("shard store %d (", j); j != i && strings.Contains(r.stderr, other) {
						t.Errorf("warning names the good copy %q:\n%s", other, r)
					}
				}
				rep, r := e.verifyJSON(false)
				if rep.OK || len(rep.DamagedShards) != 1 || rep.DamagedShards[0].Object != "config" || rep.DamagedShards[0].Shard != i {
					t.Fatalf("verify does not report config copy %d alone:\n%s", i, r)
				}
				e.must("repair")
				if b, err := os.ReadFile(p); err != nil || string(b) != string(good) {
					t.Fatalf("repair did not rewrite config copy %d: %v", i, err)
				}
				if rep, r := e.verifyJSON(true); !rep.OK {
					t.Fatalf("verify --deep after repair:\n%s", r)
				}
			})
		}
	}
	e.checkRestore(cp.ID, want, "after the config repairs")
}
