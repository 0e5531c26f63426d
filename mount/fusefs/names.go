package fusefs

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"cairn/dedup"
)

// Names in the tree. Directory names must be valid single path elements:
// no '/', no NUL, not "." or "..", at most 255 bytes.
const (
	byIDDir    = "by-id"
	latestLink = "latest"
	diskFile   = "disk.raw"
	infoFile   = "info.json"
	timeLayout = "2006-01-02T15-04-05Z"
	maxName    = 255
)

// sourceDirNames maps every source to its directory name: the source path
// without leading '/', each '/' replaced by '_' ("/var/lib/vm1.img" →
// "var_lib_vm1.img"). A name that is empty, "." or "..", "by-id", or begins
// with '.' gets a '_' in front; a name too long is cut and given a hash.
// Sources whose names would collide all get "~" and 8 hex digits of the
// SHA-256 of the source path appended, so each source keeps its own
// directory.
func sourceDirNames(sources []string) map[string]string {
	names := make(map[string]string, len(sources))
	count := make(map[string]int)
	for _, s := range sources {
		if _, ok := names[s]; ok {
			continue
		}
		n := safeName(s)
		names[s] = n
		count[n]++
	}
	for s, n := range names {
		if count[n] > 1 {
			names[s] = withHash(n, s)
		}
	}
	return names
}

func safeName(source string) string {
	n := strings.TrimLeft(source, "/")
	n = strings.NewReplacer("/", "_", "\x00", "_").Replace(n)
	if n == "" || n == byIDDir || strings.HasPrefix(n, ".") {
		n = "_" + n
	}
	if len(n) > maxName-16 {
		n = withHash(strings.ToValidUTF8(n[:maxName-32], ""), source)
	}
	return n
}

func withHash(name, source string) string {
	sum := sha256.Sum256([]byte(source))
	return name + "~" + hex.EncodeToString(sum[:4])
}

// checkpointDirNames names the checkpoint directories of one source:
// "<created, UTC, 2006-01-02T15-04-05Z>_<short ID>", so that `ls` lists them
// oldest first. The short ID is the first 8 hex digits of the UUID's last
// group (all random bits); where two would share a name, both use the full
// ID instead.
func checkpointDirNames(cps []*dedup.Checkpoint) map[string]string {
	names := make(map[string]string, len(cps))
	count := make(map[string]int)
	for _, cp := range cps {
		n := stamp(cp.CreatedAt) + "_" + shortID(cp.ID)
		names[cp.ID] = n
		count[n]++
	}
	for _, cp := range cps {
		if count[names[cp.ID]] > 1 {
			names[cp.ID] = stamp(cp.CreatedAt) + "_" + safeName(cp.ID)
		}
	}
	return names
}

func stamp(t time.Time) string { return t.UTC().Format(timeLayout) }

// shortID is the first 8 hex digits of a UUID's last group, or the whole ID
// (made safe) when it is not a UUID.
func shortID(id string) string {
	groups := strings.Split(id, "-")
	last := groups[len(groups)-1]
	if len(groups) == 5 && len(last) == 12 {
		if _, err := hex.DecodeString(last); err == nil {
			return last[:8]
		}
	}
	return safeName(id)
}
