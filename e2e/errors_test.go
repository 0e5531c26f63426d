package e2e

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestErrors checks that failures exit non-zero with one line on stderr and
// leave the repository and the user's files alone.
func TestErrors(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		e := newRepo(t, repoOpts{password: "right passphrase"})
		src := filepath.Join(e.scratch, "disk.img")
		writeFile(t, src, randomBytes(41, int(mib)))
		cp := e.backup(src)
		before := treeDigest(t, e.repo)

		keyWords := regexp.MustCompile(`(?i)passphrase|key`)
		target := filepath.Join(e.scratch, "out.img")
		for _, pw := range []string{"wrong passphrase", ""} {
			bad := e.with(pw)
			for _, args := range [][]string{
				{"checkpoints", "--json"},
				{"backup", "--source", src, "--json"},
				{"restore", cp.ID, "--to", target},
				{"verify"},
			} {
				r := bad.mustFail(args...)
				if !keyWords.MatchString(r.stderr) {
					t.Errorf("password %q: error does not mention the key or passphrase:\n%s", pw, r)
				}
			}
		}
		if _, err := os.Stat(target); err == nil {
			t.Errorf("restore with a wrong password created %s", target)
		}
		if after := treeDigest(t, e.repo); !maps.Equal(before, after) {
			t.Errorf("commands with a wrong password changed the repository:\n%s", diffTrees(before, after))
		}

		// The same passphrase through --key-file (trailing newline dropped).
		keyFile := filepath.Join(e.scratch, "key")
		writeFile(t, keyFile, []byte("right passphrase\n"))
		if cps := e.with("").checkpointsArgs("--key-file", keyFile); len(cps) != 1 || cps[0].ID != cp.ID {
			t.Errorf("checkpoints with --key-file: %+v, want %s", cps, cp.ID)
		}
		writeFile(t, keyFile, []byte("wrong passphrase\n"))
		e.with("").mustFail("--key-file", keyFile, "checkpoints")
	})

	t.Run("restore onto an existing file", func(t *testing.T) {
		e := newRepo(t, repoOpts{})
		src := filepath.Join(e.scratch, "disk.img")
		writeFile(t, src, randomBytes(42, int(mib+5)))
		cp := e.backup(src)
		target := filepath.Join(e.scratch, "precious.img")
		writeFile(t, target, []byte("precious data that must survive"))
		old := time.Now().Add(-time.Hour).Truncate(time.Second)
		if err := os.Chtimes(target, old, old); err != nil {
			t.Fatal(err)
		}
		e.mustFail("restore", cp.ID, "--to", target)
		if b, err := os.ReadFile(target); err != nil || string(b) != "precious data that must survive" {
			t.Errorf("restore without --force changed the existing file (err %v, %d bytes now)", err, len(b))
		}
		if fi, err := os.Stat(target); err != nil || !fi.ModTime().Equal(old) {
			t.Errorf("restore without --force touched the existing file (err %v)", err)
		}
		e.must("restore", cp.ID, "--to", target, "--force")
		if got, want := fileHash(t, target), fileHash(t, src); got != want {
			t.Errorf("restore --force onto an existing file: sha256 %s, want %s", got, want)
		}
	})

	t.Run("unknown checkpoint", func(t *testing.T) {
		e := newRepo(t, repoOpts{})
		src := filepath.Join(e.scratch, "disk.img")
		writeFile(t, src, randomBytes(43, int(mib)))
		e.backup(src)
		target := filepath.Join(e.scratch, "out.img")
		r := e.mustFail("restore", "ffffffff-ffff-7fff-bfff-ffffffffffff", "--to", target)
		if !strings.Contains(strings.ToLower(r.stderr), "not found") {
			t.Errorf("restore of an unknown checkpoint does not say \"not found\":\n%s", r)
		}
		if _, err := os.Stat(target); err == nil {
			t.Errorf("restore of an unknown checkpoint created %s", target)
		}
	})

	t.Run("backup of a missing path", func(t *testing.T) {
		e := newRepo(t, repoOpts{})
		e.mustFail("backup", "--source", filepath.Join(e.scratch, "no-such.img"))
		if cps := e.checkpoints(); len(cps) != 0 {
			t.Errorf("failed backup left checkpoints: %+v", cps)
		}
	})

	t.Run("no repository", func(t *testing.T) {
		e := &env{t: t, repo: filepath.Join(t.TempDir(), "nothing")}
		r := e.mustFail("checkpoints")
		if !strings.Contains(strings.ToLower(r.stderr), "repository") {
			t.Errorf("error does not mention the repository:\n%s", r)
		}
	})

	t.Run("init twice", func(t *testing.T) {
		e := newRepo(t, repoOpts{})
		before := treeDigest(t, e.repo)
		r := e.mustFail(append([]string{"repo", "init"}, smallGeometry...)...)
		if !strings.Contains(strings.ToLower(r.stderr), "exist") {
			t.Errorf("second init does not say the repository exists:\n%s", r)
		}
		if after := treeDigest(t, e.repo); !maps.Equal(before, after) {
			t.Errorf("second init changed the repository:\n%s", diffTrees(before, after))
		}
	})
}

// checkpointsArgs is checkpoints with extra global flags.
func (e *env) checkpointsArgs(flags ...string) []checkpoint {
	e.t.Helper()
	out := e.must(append(flags, "checkpoints", "--json")...)
	var cps []checkpoint
	if err := jsonUnmarshal(out, &cps); err != nil {
		e.t.Fatalf("checkpoints --json: %v\n%s", err, clip(out))
	}
	return cps
}

func diffTrees(a, b map[string]string) string {
	var s strings.Builder
	for k, v := range a {
		if w, ok := b[k]; !ok {
			s.WriteString("removed " + k + "\n")
		} else if w != v {
			s.WriteString("changed " + k + "\n")
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			s.WriteString("added " + k + "\n")
		}
	}
	return s.String()
}
