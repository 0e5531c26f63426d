package fusefs

import (
	"strings"
	"testing"
	"time"

	"cairn/dedup"
)

func TestSourceDirNames(t *testing.T) {
	got := sourceDirNames([]string{"/var/lib/vm1.img", "/dev/vg0/db", "by-id", "/", "..", "/a_b", "/a/b", "rbd/pool/img@snap", "/" + strings.Repeat("x", 300)})
	for src, want := range map[string]string{
		"/var/lib/vm1.img":  "var_lib_vm1.img",
		"/dev/vg0/db":       "dev_vg0_db",
		"by-id":             "_by-id",
		"/":                 "_",
		"..":                "_..",
		"rbd/pool/img@snap": "rbd_pool_img@snap",
	} {
		if got[src] != want {
			t.Errorf("%q → %q, want %q", src, got[src], want)
		}
	}
	if a, b := got["/a_b"], got["/a/b"]; a == b || !strings.HasPrefix(a, "a_b~") || !strings.HasPrefix(b, "a_b~") {
		t.Errorf("colliding sources: %q and %q", a, b)
	}
	if long := got["/"+strings.Repeat("x", 300)]; len(long) > maxName {
		t.Errorf("long name has %d bytes", len(long))
	}
	for src, n := range got {
		if n == "" || n == "." || n == ".." || n == byIDDir || strings.ContainsAny(n, "/\x00") {
			t.Errorf("%q → unsafe name %q", src, n)
		}
	}
}

func TestCheckpointDirNames(t *testing.T) {
	at := time.Date(2025, 6, 1, 10, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	cps := []*dedup.Checkpoint{
		{ID: "0197c2a4-5e1b-7000-8000-1a2b3c4d5e6f", CreatedAt: at},
		{ID: "0197c2a4-5e1b-7000-8000-aaaabbbbcccc", CreatedAt: at},
		{ID: "0197c2a4-5e1b-7000-9000-aaaabbbbdddd", CreatedAt: at},
		{ID: "not/a-uuid", CreatedAt: at},
	}
	got := checkpointDirNames(cps)
	for id, want := range map[string]string{
		cps[0].ID: "2025-06-01T08-00-00Z_1a2b3c4d",
		cps[1].ID: "2025-06-01T08-00-00Z_" + cps[1].ID,
		cps[2].ID: "2025-06-01T08-00-00Z_" + cps[2].ID,
		cps[3].ID: "2025-06-01T08-00-00Z_not_a-uuid",
	} {
		if got[id] != want {
			t.Errorf("%s → %q, want %q", id, got[id], want)
		}
	}
}
