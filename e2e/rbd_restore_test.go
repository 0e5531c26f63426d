//go:build ceph

package e2e

import (
	"strings"
	"testing"
)

// TestRBDRestore restores to a new image (sparse: only the objects that
// hold data exist) and over an existing one with --force (its old data is
// gone, its holes deallocated), both exact.
func TestRBDRestore(t *testing.T) {
	c := requireCeph(t)
	e := newRepo(t, repoOpts{})
	const size = 256 * mib
	name, spec := c.newImage(size, fastDiffFeatures)
	c.write(name, 16*mib, randomBytes(16, int(mib)))
	c.write(name, 200*mib, randomBytes(17, 4096))
	cp, _ := e.backupRBD(nil, spec)
	want := c.exportHash(name + "@" + cp.Tags["rbd.snap"])

	// Two objects hold data; allow for rounding in rbd du.
	const maxUsed = 4 * 4 * mib
	target, targetSpec := c.newImage(4*mib, "layering") // reserve a name and its cleanup
	c.removeImage(target)
	e.must("restore", cp.ID, "--to", targetSpec)
	if got := c.exportHash(target); got != want {
		t.Fatalf("restored image hashes to %s, want %s", got, want)
	}
	if used := c.usedBytes(target); used > maxUsed {
		t.Errorf("restored image uses %d bytes, want at most %d of %d (sparse)", used, maxUsed, size)
	}
	if r := e.mustFail("restore", cp.ID, "--to", targetSpec); !strings.Contains(r.stderr, "--force") {
		t.Errorf("restore over an existing image without --force: %s", r)
	}

	// An existing image full of other data.
	other, otherSpec := c.newImage(size, fastDiffFeatures)
	c.rbdCLI("bench", "--io-type", "write", "--io-size", "4K", "--io-pattern", "rand", "--io-total", "8M", c.pool+"/"+other)
	e.must("restore", cp.ID, "--to", otherSpec, "--force")
	if got := c.exportHash(other); got != want {
		t.Fatalf("image restored with --force hashes to %s, want %s", got, want)
	}
	if used := c.usedBytes(other); used > maxUsed {
		t.Errorf("image restored with --force uses %d bytes, want at most %d (holes deallocated)", used, maxUsed)
	}

	_, smallSpec := c.newImage(size/2, fastDiffFeatures)
	if r := e.mustFail("restore", cp.ID, "--to", smallSpec, "--force"); !strings.Contains(r.stderr, "too small") {
		t.Errorf("restore into a smaller image: %s", r)
	}
}
