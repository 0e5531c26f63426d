package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cairnBin is the binary under test, built once by TestMain.
var cairnBin string

// noSync is true when cmd/cairn has the hidden --no-sync flag; every command
// then passes it, which makes the tests several times faster and changes
// nothing a test can observe short of a power cut.
var noSync bool

// commandTimeout bounds one cairn invocation, so a hung command fails its
// test instead of the whole run.
const commandTimeout = 5 * time.Minute

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the module root (go env GOMOD: %q, %v)\n", gomod, err)
		return 1
	}
	root := filepath.Dir(gomod)
	dir, err := os.MkdirTemp("", "cairn-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cairnBin = filepath.Join(dir, "cairn")
	args := []string{"build", "-o", cairnBin}
	if raceEnabled {
		args = append(args, "-race") // the binary gets what the tests get
	}
	if buildTags != "" {
		args = append(args, "-tags", buildTags)
	}
	build := exec.Command("go", append(args, "./cmd/cairn")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/cairn failed: %v\n%s", err, out)
		return 1
	}
	noSync = hasNoSyncFlag(root)
	return m.Run()
}

// hasNoSyncFlag reports whether cmd/cairn defines --no-sync and the built
// binary accepts it. The flag is hidden, so --help cannot tell.
func hasNoSyncFlag(root string) bool {
	srcs, _ := filepath.Glob(filepath.Join(root, "cmd", "cairn", "*.go"))
	defined := false
	for _, p := range srcs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(`"no-sync"`)) {
			defined = true
			break
		}
	}
	if !defined {
		return false
	}
	var stderr bytes.Buffer
	cmd := exec.Command(cairnBin, "--no-sync", "version")
	cmd.Stderr = &stderr
	return cmd.Run() == nil || !strings.Contains(stderr.String(), "no-sync")
}

// requireTool returns the path of an outside program the test needs. A
// missing tool skips the test, or fails it under CAIRN_REQUIRE_ALL=1.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatalf("%s is required (CAIRN_REQUIRE_ALL=1) but not found: %v", name, err)
		}
		t.Skipf("%s not found (%v); install e2fsprogs or set CAIRN_REQUIRE_ALL=1 to make this fatal", name, err)
	}
	return p
}

// checkpoint mirrors the JSON the CLI prints for a checkpoint.
type checkpoint struct {
	ID             string    `json:"id"`
	Source         string    `json:"source"`
	Parent         string    `json:"parent"`
	CreatedAt      time.Time `json:"created_at"`
	Size           int64     `json:"size"`
	AllocatedBytes int64     `json:"allocated_bytes"`
	ReadBytes      int64     `json:"read_bytes"`
	NewBytes       int64     `json:"new_bytes"`
	NewChunks      int64     `json:"new_chunks"`
	StoredBytes    int64     `json:"stored_bytes"`
	Blocks         int64     `json:"blocks"`
	HoleBlocks     int64     `json:"hole_blocks"`
	Full           bool      `json:"full"`
}

// result is what one cairn invocation did.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
	took   time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("cairn %s: exit %d after %v\nstdout: %s\nstderr: %s",
		strings.Join(r.args, " "), r.code, r.took.Round(time.Millisecond), clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	if len(s) > 4000 {
		return s[:2000] + "\n…\n" + s[len(s)-2000:]
	}
	return s
}

// env is one repository and the environment commands run with.
type env struct {
	t        *testing.T
	repo     string // CAIRN_REPO
	password string // CAIRN_PASSWORD; empty for none
	project  string // --project, for repo naming an appliance data directory
	scratch  string // a private temporary directory
}

// repoOpts choose how newRepo initialises the repository.
type repoOpts struct {
	password string   // encrypt with this passphrase (adds --encrypt)
	init     []string // repo init flags; nil means small test geometry
}

// smallGeometry keeps test repositories fast: 64 KiB blocks, 1 MiB packs.
var smallGeometry = []string{"--block-size", "64KiB", "--pack-size", "1MiB"}

// newRepo creates an initialised repository in a fresh temporary directory.
func newRepo(t *testing.T, o repoOpts) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, repo: filepath.Join(dir, "repo"), password: o.password, scratch: filepath.Join(dir, "scratch")}
	if err := os.Mkdir(e.scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"repo", "init"}
	if o.init == nil {
		args = append(args, smallGeometry...)
	} else {
		args = append(args, o.init...)
	}
	if o.password != "" {
		args = append(args, "--encrypt")
	}
	e.must(args...)
	if _, err := os.Stat(filepath.Join(e.repo, "cairn.json")); err != nil {
		t.Fatalf("repo init succeeded but left no cairn.json: %v", err)
	}
	return e
}

// with returns a copy of e that runs commands with another passphrase.
func (e *env) with(password string) *env {
	c := *e
	c.password = password
	return &c
}

func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	full := args
	if noSync {
		full = append([]string{"--no-sync"}, full...)
	}
	if e.project != "" {
		full = append([]string{"--project", e.project}, full...)
	}
	cmd := exec.CommandContext(ctx, cairnBin, full...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CAIRN_REPO="+e.repo)
	if e.password != "" {
		cmd.Env = append(cmd.Env, "CAIRN_PASSWORD="+e.password)
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// run runs cairn and returns what happened, whatever the exit status.
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return execute(e.t, ctx, e.command(ctx, args...), "cairn", args)
}

// execute runs cmd, made with ctx, and returns what happened whatever its
// exit status; a timeout or a failure to start fails the test.
func execute(t *testing.T, ctx context.Context, cmd *exec.Cmd, name string, args []string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("%s %s: timed out\nstderr: %s", name, strings.Join(args, " "), clip(r.stderr))
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// must runs cairn, fails the test unless it exits 0, and returns stdout.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("command failed:\n%s", r)
	}
	return r.stdout
}

// mustFail runs cairn and fails the test unless it exits non-zero with one
// line "cairn: reason" on stderr.
func (e *env) mustFail(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code == 0 {
		e.t.Fatalf("command succeeded, want failure:\n%s", r)
	}
	checkErrorLine(e.t, r)
	return r
}

// checkErrorLine checks the contract for failures: one line on stderr,
// starting "cairn: ".
func checkErrorLine(t *testing.T, r result) {
	t.Helper()
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "cairn: ") {
		t.Errorf("want one line \"cairn: reason\" on stderr:\n%s", r)
	}
}

// backup backs up src and returns the checkpoint it printed.
func (e *env) backup(src string, extra ...string) checkpoint {
	e.t.Helper()
	args := append([]string{"backup", "--source", src, "--json"}, extra...)
	out := e.must(args...)
	var cp checkpoint
	if err := json.Unmarshal([]byte(out), &cp); err != nil {
		e.t.Fatalf("backup --json printed no checkpoint object: %v\nstdout: %s", err, clip(out))
	}
	if cp.ID == "" {
		e.t.Fatalf("backup --json printed a checkpoint without an id: %s", clip(out))
	}
	return cp
}

// checkpoints returns what `checkpoints --json` lists.
func (e *env) checkpoints() []checkpoint {
	e.t.Helper()
	out := e.must("checkpoints", "--json")
	var cps []checkpoint
	if err := json.Unmarshal([]byte(out), &cps); err != nil {
		e.t.Fatalf("checkpoints --json did not print an array of checkpoints: %v\nstdout: %s", err, clip(out))
	}
	return cps
}

// restore restores checkpoint id to a new file in the scratch directory and
// returns its path; the file is removed when the test ends.
func (e *env) restore(id string) string {
	e.t.Helper()
	f, err := os.CreateTemp(e.scratch, "restore-*.img")
	if err != nil {
		e.t.Fatal(err)
	}
	path := f.Name()
	f.Close()
	os.Remove(path) // restore must create it
	e.t.Cleanup(func() { os.Remove(path) })
	e.must("restore", id, "--to", path)
	return path
}

// restoreHash restores checkpoint id and returns the SHA-256 of the result,
// removing the restored file right away (some tests restore gigabytes).
func (e *env) restoreHash(id string) string {
	e.t.Helper()
	path := e.restore(id)
	h := fileHash(e.t, path)
	os.Remove(path)
	return h
}

// checkRestore restores checkpoint id and fails unless it hashes to want.
func (e *env) checkRestore(id, want, what string) {
	e.t.Helper()
	if got := e.restoreHash(id); got != want {
		e.t.Fatalf("checkpoint %s (%s) restored with sha256 %s, want %s", id, what, got, want)
	}
}

// shardFiles lists the regular files under repo/shards/*/<kind>/ (kind is
// "packs" or "manifests"), skipping a local store's in-flight temp files.
func (e *env) shardFiles(kind string) []string {
	e.t.Helper()
	var files []string
	shards, err := filepath.Glob(filepath.Join(e.repo, "shards", "*", kind))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, dir := range shards {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	sort.Strings(files)
	return files
}

// treeDigest maps every regular file under dir to a hash of its content.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			m[rel] = fileHash(t, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// allocated returns the bytes a file occupies on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// randomBytes returns n pseudo-random bytes from seed (fast: ChaCha8).
func randomBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeAt writes data at off in an existing file.
func writeAt(t *testing.T, path string, data []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, b)
}

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
