// Package testenv lets tests that need an outside service (a Ceph
// cluster, a Keystone) find it through an environment variable. Without
// one a test is skipped on a developer's machine, but fails under
// CAIRN_REQUIRE_ALL=1 (CI), so that a missing service never passes as a
// skipped test.
package testenv

import (
	"os"
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
