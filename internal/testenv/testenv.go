// Package testenv lets tests that need an outside service (a Ceph
// cluster, a Keystone) find it through an environment variable. Without
// one a test is skipped on a developer's machine, but fails under
// CAIRN_REQUIRE_ALL=1 (CI), so that a missing service never passes as a
// skipped test.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Lookup returns the value of the environment variable name. When it is
// unset, the test is skipped (failed under CAIRN_REQUIRE_ALL=1) with a
// message naming what is missing and how to provide it.
func Lookup(t testing.TB, name, what, how string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
		t.Fatalf("%s is required (CAIRN_REQUIRE_ALL=1) but %s is not set: %s", what, name, how)
	}
	t.Skipf("%s not set: no %s (%s; CAIRN_REQUIRE_ALL=1 makes this fatal)", name, what, how)
	return ""
}

// SmallFS mounts a tmpfs of size (as "64m") in a fresh directory, for
// tests of a full file system, and unmounts it when the test ends. It
// needs root: without, the test is skipped (failed under
// CAIRN_REQUIRE_ALL=1).
func SmallFS(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatal("mounting a tmpfs needs root (CAIRN_REQUIRE_ALL=1)")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}
