//go:build !cairn_testhooks

package backup

import "cairn/blockdev"

// testDropDiffExtent is the identity in the shipped binary: the hook that
// simulates a diff bug exists only in binaries built with the
// cairn_testhooks tag (the end-to-end tests' own build).
func testDropDiffExtent(changed []blockdev.Extent, _ Reporter) []blockdev.Extent { return changed }
