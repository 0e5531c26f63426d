//go:build cairn_testhooks

package backup

import (
	"os"

	"cairn/blockdev"
)

// testDropDiffEnv, when "1", drops one changed extent from every diff: a
// simulated Ceph diff bug for the end-to-end tests, in their build only.
const testDropDiffEnv = "CAIRN_TEST_DROP_DIFF_EXTENT"

func testDropDiffExtent(changed []blockdev.Extent, rep Reporter) []blockdev.Extent {
	if os.Getenv(testDropDiffEnv) != "1" || len(changed) == 0 {
		return changed
	}
	i := len(changed) / 2
	rep.warnf("test hook: dropping changed extent %d+%d", changed[i].Off, changed[i].Len)
	return append(changed[:i:i], changed[i+1:]...)
}
