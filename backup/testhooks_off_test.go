//go:build !cairn_testhooks

package backup

import (
	"slices"
	"testing"

	"cairn/blockdev"
)

// TestShippedBuildHasNoDiffHook: without the cairn_testhooks tag, the
// environment cannot make a backup drop part of a diff.
func TestShippedBuildHasNoDiffHook(t *testing.T) {
	t.Setenv("CAIRN_TEST_DROP_DIFF_EXTENT", "1")
	in := []blockdev.Extent{{Off: 0, Len: 4096}, {Off: 1 << 20, Len: 4096}, {Off: 2 << 20, Len: 4096}}
	if got := testDropDiffExtent(slices.Clone(in), Reporter{}); !slices.Equal(got, in) {
		t.Fatalf("the shipped build changed a diff: %v", got)
	}
}
