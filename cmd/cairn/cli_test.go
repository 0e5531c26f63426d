package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"cairn/dedup"
)

// cli runs cairn in process with a fixed environment.
type cli struct {
	t   *testing.T
	env map[string]string
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return c.env[k] }
	code := run(context.Background(), append([]string{"--no-sync"}, args...), strings.NewReader(""), &out, &errb, getenv)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs cairn and fails the test unless it exits 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fail runs cairn and fails the test unless it exits with code and prints
// one "cairn: " line containing want on stderr.
func (c *cli) fail(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code || !strings.HasPrefix(r.stderr, "cairn: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("cairn %s: exit %d, stderr %q; want exit %d and one line containing %q",
			strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	return r
}

// writeSparse writes a sparse volume: data in some blocks, a long hole,
// an explicitly written zero block and a ragged tail.
func writeSparse(t *testing.T, path string, seed uint64) []byte {
	t.Helper()
	const bs = 64 << 10
	data := make([]byte, 12*bs+1234)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, blk := range []int{0, 1, 4, 11} {
		for i := blk * bs; i < (blk+1)*bs; i++ {
			data[i] = byte(rng.Uint32())
		}
	}
	copy(data[12*bs:], bytes.Repeat([]byte("tail"), 1000))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	for _, blk := range []int{0, 1, 4, 7, 11, 12} { // 7 is written as zeros
		end := min((blk+1)*bs, len(data))
		if _, err := f.WriteAt(data[blk*bs:end], int64(blk*bs)); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

func TestCLIBackupRestore(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": filepath.Join(dir, "repo")}}

	// init, JSON output.
	r := c.ok("--json", "repo", "init", "--block-size", "64KiB", "--pack-size", "1MiB", "--data-shards", "3", "--parity-shards", "1")
	var info initJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("init JSON: %v\n%s", err, r.stdout)
	}
	if info.ID == "" || info.BlockSize != 64<<10 || info.PackSize != 1<<20 || info.DataShards != 3 || info.ParityShards != 1 ||
		info.Encrypted || len(info.Shards) != 4 || info.Shards[3] != filepath.Join(dir, "repo", "shards", "3") {
		t.Fatalf("init reported %+v", info)
	}
	c.fail(exitFailure, "already exists", "repo", "init")

	// An empty repository.
	if r := c.ok("checkpoints"); r.stdout != "no checkpoints\n" {
		t.Fatalf("empty checkpoints: %q", r.stdout)
	}
	if r := c.ok("checkpoints", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("empty checkpoints --json: %q", r.stdout)
	}

	// First backup: full, JSON, with tags.
	src := filepath.Join(dir, "vol.img")
	data := writeSparse(t, src, 1)
	r = c.ok("--json", "backup", "--source", src, "--tag", "host=db1", "--tag", "kind=nightly")
	var cp1 dedup.Checkpoint
	if err := json.Unmarshal([]byte(r.stdout), &cp1); err != nil {
		t.Fatalf("backup JSON: %v\n%s", err, r.stdout)
	}
	if cp1.ID == "" || cp1.Source != src || cp1.Size != int64(len(data)) || cp1.Parent != "" ||
		cp1.Tags["host"] != "db1" || cp1.Tags["kind"] != "nightly" {
		t.Fatalf("backup reported %+v", cp1)
	}
	// Blocks 0, 1, 4, 11 and the tail hold data; the rest are holes.
	if want := int64(4*(64<<10) + 1234); cp1.AllocatedBytes != want {
		t.Errorf("allocated %d; want %d", cp1.AllocatedBytes, want)
	}
	if cp1.ReadBytes >= cp1.Size {
		t.Errorf("read %d of %d bytes: holes were read", cp1.ReadBytes, cp1.Size)
	}

	// Second backup of a changed volume: human output, parent by default.
	data = writeSparse(t, src, 2)
	r = c.ok("backup", "--source", src)
	for _, want := range []string{"checkpoint", "source", "parent      " + cp1.ID, "allocated", "stored", "MB/s"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("backup summary lacks %q:\n%s", want, r.stdout)
		}
	}
	// --quiet prints only the ID.
	r = c.ok("-q", "backup", "--source", src, "--full")
	quietID := strings.TrimSpace(r.stdout)
	if len(quietID) != 36 || strings.Contains(quietID, "\n") {
		t.Fatalf("backup -q printed %q", r.stdout)
	}

	// List: JSON objects carry exactly the checkpoint fields.
	r = c.ok("checkpoints", "--json")
	var raw []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("checkpoints JSON: %v\n%s", err, r.stdout)
	}
	if len(raw) != 3 {
		t.Fatalf("%d checkpoints listed; want 3", len(raw))
	}
	want, _ := json.Marshal(cp1)
	var wantKeys map[string]any
	_ = json.Unmarshal(want, &wantKeys)
	for k := range wantKeys {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("checkpoint JSON lacks %q", k)
		}
	}
	for k := range raw[0] {
		if _, ok := wantKeys[k]; !ok {
			t.Errorf("checkpoint JSON has extra key %q", k)
		}
	}
	if raw[0]["id"] != cp1.ID || raw[1]["parent"] != cp1.ID || raw[2]["id"] != quietID {
		t.Errorf("checkpoints out of order or parents wrong: %s", r.stdout)
	}
	cp2 := raw[1]["id"].(string)

	r = c.ok("checkpoints", "--source", src)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.Contains(lines[1], cp1.ID) || !strings.Contains(lines[1], "KiB") {
		t.Errorf("checkpoints table:\n%s", r.stdout)
	}
	if r := c.ok("checkpoints", "--source", "/no/such/source"); r.stdout != "no checkpoints\n" {
		t.Errorf("checkpoints of another source: %q", r.stdout)
	}

	// Restore both checkpoints and compare.
	out := filepath.Join(dir, "restored.img")
	r = c.ok("--json", "restore", cp2, "--to", out)
	var rj restoreJSON
	if err := json.Unmarshal([]byte(r.stdout), &rj); err != nil {
		t.Fatalf("restore JSON: %v\n%s", err, r.stdout)
	}
	if rj.ID != cp2 || rj.To != out || rj.Size != int64(len(data)) || rj.BytesWritten == 0 || rj.BytesWritten >= rj.Size {
		t.Errorf("restore reported %+v", rj)
	}
	assertFile(t, out, data)

	c.fail(exitFailure, "already exists", "restore", cp1.ID, "--to", out)
	old := writeSparse(t, filepath.Join(dir, "old.img"), 1)
	r = c.ok("restore", cp1.ID, "--to", out, "--force")
	if !strings.Contains(r.stdout, "restored") || !strings.Contains(r.stdout, cp1.ID) {
		t.Errorf("restore summary:\n%s", r.stdout)
	}
	assertFile(t, out, old)

	c.fail(exitFailure, "checkpoint not found", "restore", "ffffffff", "--to", filepath.Join(dir, "x.img"))
	if _, err := os.Stat(filepath.Join(dir, "x.img")); !os.IsNotExist(err) {
		t.Errorf("a failed restore left its target behind: %v", err)
	}
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d backed up", path, len(got), len(want))
	}
}

func TestCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, env: map[string]string{}}
	c.fail(exitUsage, "no repository: pass --repo or set CAIRN_REPO", "checkpoints")
	c.fail(exitUsage, "unknown command", "bogus")
	c.fail(exitUsage, `did you mean "backup"`, "backpu")
	c.fail(exitUsage, "unknown command", "repo", "bogus")
	c.fail(exitUsage, "unknown flag", "checkpoints", "--bogus")
	c.fail(exitUsage, `required flag(s) "source" not set`, "backup")
	c.fail(exitUsage, `required flag(s) "to" not set`, "restore", "abc")
	c.fail(exitUsage, "accepts 1 arg", "restore", "--to", "x")
	c.fail(exitUsage, "KEY=VALUE", "--repo", dir, "backup", "--source", "x", "--tag", "novalue")
	c.fail(exitUsage, "none of the others", "--repo", dir, "backup", "--source", "x", "--full", "--parent", "abc")
	c.fail(exitUsage, "nothing to forget", "--repo", dir, "forget")
	c.fail(exitUsage, "--compact-below", "--repo", dir, "prune", "--compact-below", "2")
	c.fail(exitUsage, "--block-size", "--repo", dir, "repo", "init", "--block-size", "4MB")
	c.fail(exitUsage, "--encrypt needs a passphrase", "--repo", dir, "repo", "init", "--encrypt")
	c.fail(exitUsage, "invalid argument", "--repo", dir, "repo", "init", "--data-shards", "many")
	c.fail(exitFailure, "no cairn repository here", "--repo", dir, "checkpoints")

	// Help and version succeed and say something useful.
	for _, args := range [][]string{{"--help"}, {"backup", "--help"}, {"repo"}, {}} {
		r := c.ok(args...)
		if !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("cairn %v printed no usage:\n%s", args, r.stdout)
		}
	}
	if r := c.ok("version"); !strings.HasPrefix(r.stdout, "cairn ") {
		t.Errorf("version printed %q", r.stdout)
	}
}

// Every command's help explains it and shows an example.
func TestCLIHelpHasExamples(t *testing.T) {
	var check func(c *cobra.Command)
	check = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.Short == "" || c.Long == "" || c.Example == "" {
			t.Errorf("%s: missing Short, Long or Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			check(sub)
		}
	}
	check(newRootCmd(&app{}))
}

func TestCLIEncrypted(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": repo}}
	c.fail(exitUsage, "--key-file given without --encrypt", "--key-file", keyFile, "repo", "init")
	r := c.ok("--key-file", keyFile, "repo", "init", "--encrypt", "--block-size", "64KiB", "--pack-size", "1MiB")
	if !strings.Contains(r.stdout, "aes-256-gcm") {
		t.Errorf("init summary does not mention encryption:\n%s", r.stdout)
	}
	c.fail(exitFailure, "repository is encrypted", "checkpoints")
	c.env["CAIRN_PASSWORD"] = "wrong"
	c.fail(exitFailure, "wrong passphrase", "checkpoints")
	// The key file's trailing newline is not part of the passphrase.
	c.env["CAIRN_PASSWORD"] = "correct horse"
	c.ok("checkpoints")
	c.ok("--key-file", keyFile, "checkpoints")
}

func TestCLIMaintenance(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": repo}}
	c.ok("repo", "init", "--block-size", "64KiB", "--pack-size", "1MiB")
	src := filepath.Join(dir, "vol.img")
	writeSparse(t, src, 1)
	c.ok("backup", "--source", src)
	data := writeSparse(t, src, 2)
	c.ok("backup", "--source", src)

	if r := c.ok("verify"); !strings.Contains(r.stdout, "repository OK") {
		t.Errorf("verify:\n%s", r.stdout)
	}
	var vj verifyJSON
	if r := c.ok("--json", "verify", "--deep"); json.Unmarshal([]byte(r.stdout), &vj) != nil || !vj.OK || !vj.Deep || vj.Packs == 0 || vj.DamagedShards == nil {
		t.Errorf("verify --deep --json:\n%s", r.stdout)
	}

	var sj statsJSON
	if r := c.ok("--json", "stats"); json.Unmarshal([]byte(r.stdout), &sj) != nil || sj.Checkpoints != 2 || sj.DataShards != 4 || sj.BlockSize != 64<<10 {
		t.Errorf("stats --json:\n%s", r.stdout)
	}
	if r := c.ok("stats"); !strings.Contains(r.stdout, "dedup ratio") || !strings.Contains(r.stdout, "4 data + 2 parity") {
		t.Errorf("stats:\n%s", r.stdout)
	}

	var rj dedup.RebuildIndexResult
	if r := c.ok("--json", "repo", "rebuild-index"); json.Unmarshal([]byte(r.stdout), &rj) != nil || rj.Checkpoints != 2 || rj.Packs == 0 {
		t.Errorf("rebuild-index --json:\n%s", r.stdout)
	}

	// A dry run removes nothing.
	r := c.ok("forget", "--keep-last", "1", "--dry-run", "--prune")
	if !strings.Contains(r.stdout, "would remove 1 checkpoints, kept 1") || !strings.Contains(r.stdout, "prune skipped") {
		t.Errorf("forget --dry-run:\n%s", r.stdout)
	}
	if r := c.ok("--json", "checkpoints"); strings.Count(r.stdout, `"id"`) != 2 {
		t.Fatalf("forget --dry-run removed checkpoints:\n%s", r.stdout)
	}
	var fj forgetJSON
	r = c.ok("--json", "forget", "--keep-last", "1", "--prune")
	if err := json.Unmarshal([]byte(r.stdout), &fj); err != nil || len(fj.Keep) != 1 || len(fj.Remove) != 1 || fj.Prune == nil || fj.DryRun {
		t.Fatalf("forget --prune --json: %v\n%s", err, r.stdout)
	}
	var pj pruneJSON
	if r := c.ok("--json", "prune", "--grace", "0s"); json.Unmarshal([]byte(r.stdout), &pj) != nil || pj.PacksTotal == 0 {
		t.Errorf("prune --json:\n%s", r.stdout)
	}
	if r := c.ok("prune", "--dry-run"); !strings.Contains(r.stdout, "dry run") || !strings.Contains(r.stdout, "freed") {
		t.Errorf("prune --dry-run:\n%s", r.stdout)
	}
	c.ok("restore", fj.Keep[0].ID, "--to", filepath.Join(dir, "kept.img"))
	assertFile(t, filepath.Join(dir, "kept.img"), data)
	c.fail(exitFailure, "not found", "forget", fj.Remove[0].ID)

	// Damage one shard file: verify fails and points at repair, which fixes it.
	var victim string
	_ = filepath.WalkDir(filepath.Join(repo, "shards", "1", "packs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && victim == "" {
			victim = p
		}
		return nil
	})
	if victim == "" {
		t.Fatal("no pack shard file found")
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	r = c.fail(exitFailure, "run `cairn repair`", "verify")
	if !strings.Contains(r.stdout, "damaged shard") {
		t.Errorf("verify of a damaged repository:\n%s", r.stdout)
	}
	if r := c.ok("repair"); !strings.Contains(r.stdout, "rewrote") {
		t.Errorf("repair:\n%s", r.stdout)
	}
	c.ok("verify")
}

func TestCLIInterrupted(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": filepath.Join(dir, "repo")}}
	c.ok("repo", "init", "--block-size", "64KiB", "--pack-size", "1MiB")
	src := filepath.Join(dir, "vol.img")
	writeSparse(t, src, 1)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"--no-sync", "backup", "--source", src}, strings.NewReader(""), &out, &errb, func(k string) string { return c.env[k] })
	if code != exitInterrupted || errb.String() != "cairn: interrupted\n" {
		t.Errorf("cancelled backup: exit %d, stderr %q", code, errb.String())
	}
	if r := c.ok("checkpoints"); r.stdout != "no checkpoints\n" {
		t.Errorf("an interrupted backup left a checkpoint:\n%s", r.stdout)
	}
}
