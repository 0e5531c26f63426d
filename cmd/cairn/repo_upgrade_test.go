package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRepoUpgrade: `repo upgrade` moves a repository written before
// frames (checked in under dedup/testdata) to format 2, once; its
// checkpoints stay listed and restorable.
func TestCLIRepoUpgrade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	src := filepath.Join("..", "..", "dedup", "testdata", "format1", "plain")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": dir}}
	for _, want := range []map[string]int{{"format_before": 1, "format": 2}, {"format_before": 2, "format": 2}} {
		var got map[string]int
		if err := json.Unmarshal([]byte(c.ok("--json", "repo", "upgrade").stdout), &got); err != nil || got["format_before"] != want["format_before"] || got["format"] != want["format"] {
			t.Fatalf("repo upgrade: %v, %v; want %v", got, err, want)
		}
	}
	if out := c.ok("repo", "upgrade").stdout; !strings.Contains(out, "at format 2 already") {
		t.Errorf("repo upgrade of an upgraded repository says %q", out)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "shards", "2", "config"))
	if err != nil || !strings.Contains(string(cfg), `"version": 2`) {
		t.Fatalf("shard store 2's config after the upgrade: %s, %v", cfg, err)
	}
	var cps []struct{ ID string }
	if err := json.Unmarshal([]byte(c.ok("--json", "checkpoints").stdout), &cps); err != nil || len(cps) != 2 {
		t.Fatalf("checkpoints after the upgrade: %v, %v; want 2", cps, err)
	}
	c.ok("restore", cps[0].ID, "--to", filepath.Join(t.TempDir(), "v.img"))
}
