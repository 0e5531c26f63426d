package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentRestoresOnePath runs two restores of different
// checkpoints to one path at once. Without --force one wins and the other
// fails saying the target exists; with --force both succeed and the last
// to finish wins. Either way the file is exactly one of the two volumes,
// never a mix, and no partial file is left beside it.
func TestConcurrentRestoresOnePath(t *testing.T) {
	e := newRepo(t, repoOpts{})
	var ids, hashes [2]string
	for i := range ids {
		src := filepath.Join(e.scratch, "vol"+string(rune('a'+i))+".img")
		writeRandomFile(t, src, uint64(40+i), 24*mib)
		ids[i], hashes[i] = e.backup(src).ID, fileHash(t, src)
	}
	for _, force := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "force"}[force], func(t *testing.T) {
			dir := t.TempDir()
			to := filepath.Join(dir, "restored.img")
			if force {
				writeFile(t, to, []byte("an old file, replaced whole"))
			}
			var res [2]result
			var wg sync.WaitGroup
			for i := range ids {
				wg.Go(func() {
					args := []string{"restore", ids[i], "--to", to}
					if force {
						args = append(args, "--force")
					}
					res[i] = e.run(args...)
				})
			}
			wg.Wait()
			ok := 0
			for _, r := range res {
				switch {
				case r.code == 0:
					ok++
				case force:
					t.Errorf("forced restore failed:\n%s", r)
				case !strings.Contains(r.stderr, "exists"):
					t.Errorf("the losing restore does not say the target exists:\n%s", r)
				default:
					checkErrorLine(t, r)
				}
			}
			if want := map[bool]int{false: 1, true: 2}[force]; ok != want {
				t.Errorf("%d restores succeeded, want %d:\n%s\n%s", ok, want, res[0], res[1])
			}
			if h := fileHash(t, to); h != hashes[0] && h != hashes[1] {
				t.Errorf("%s is neither volume byte for byte (sha256 %s)", to, h)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("the directory holds %v, want only restored.img", ents)
			}
		})
	}
}
