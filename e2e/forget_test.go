package e2e

import (
	"path/filepath"
	"testing"
)

// TestForgetPrune forgets old checkpoints, prunes their data and checks that
// what is kept still restores and verifies.
func TestForgetPrune(t *testing.T) {
	e := newRepo(t, repoOpts{})
	src := filepath.Join(e.scratch, "disk.img")
	type saved struct{ id, hash string }
	var cps []saved
	for i := range 4 {
		writeFile(t, src, randomBytes(uint64(51+i), int(2*mib))) // nothing shared
		cps = append(cps, saved{e.backup(src).ID, fileHash(t, src)})
	}
	packs := len(e.shardFiles("packs"))

	e.must("forget", "--keep-last", "2")
	listed := e.checkpoints()
	if len(listed) != 2 || listed[0].ID != cps[2].id || listed[1].ID != cps[3].id {
		t.Fatalf("after forget --keep-last 2: %+v, want %s and %s", listed, cps[2].id, cps[3].id)
	}
	e.must("prune", "--grace", "0s")
	if now := len(e.shardFiles("packs")); now >= packs {
		t.Errorf("prune --grace 0s after forgetting half the checkpoints: %d pack shard files, had %d", now, packs)
	}
	e.must("verify")
	for _, c := range cps[2:] {
		e.checkRestore(c.id, c.hash, "kept by forget")
	}
	e.mustFail("restore", cps[0].id, "--to", filepath.Join(e.scratch, "forgotten.img"))

	e.must("forget", "--keep-last", "1", "--prune")
	if listed := e.checkpoints(); len(listed) != 1 || listed[0].ID != cps[3].id {
		t.Fatalf("after forget --keep-last 1 --prune: %+v, want %s", listed, cps[3].id)
	}
	e.checkRestore(cps[3].id, cps[3].hash, "kept by forget --prune")
	e.must("verify", "--deep")

	var stats map[string]any
	out := e.must("stats", "--json")
	if err := jsonUnmarshal(out, &stats); err != nil || len(stats) == 0 {
		t.Fatalf("stats --json did not print a JSON object: %v\n%s", err, clip(out))
	}
	if stats["checkpoints"] != 1.0 || stats["data_shards"] != 4.0 || stats["parity_shards"] != 2.0 {
		t.Errorf("stats --json: checkpoints %v, data_shards %v, parity_shards %v; want 1, 4, 2", stats["checkpoints"], stats["data_shards"], stats["parity_shards"])
	}
}
