// Package e2e holds end-to-end tests of the cairn command. TestMain builds
// the real binary once from the module root; each test then drives it as a
// user would, against its own repository in a temporary directory (through
// $CAIRN_REPO), and checks exit statuses, JSON output and restored bytes.
//
// The slow tests (a 1 GiB incremental backup, the kill-and-verify loop) are
// skipped under -short. Tests that need outside tools (mkfs.ext4, debugfs)
// skip when the tool is missing, unless CAIRN_REQUIRE_ALL=1, which turns
// every such skip into a failure.
package e2e
