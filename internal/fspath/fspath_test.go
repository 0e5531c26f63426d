package fspath

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestPartitionFile(t *testing.T) {
	for in, want := range map[string]string{"": "", "1": "part1.raw", "part12": "part12.raw", "PART2": "part2.raw", "disk": "disk.raw", "0": "disk.raw"} {
		if got, err := PartitionFile(in); err != nil || got != want {
			t.Errorf("PartitionFile(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "01", "part", "1/2", "../disk", "123456", "-1"} {
		if _, err := PartitionFile(in); !errors.Is(err, ErrBadPartition) {
			t.Errorf("PartitionFile(%q): %v, want ErrBadPartition", in, err)
		}
	}
}

func TestRelPath(t *testing.T) {
	for in, want := range map[string]string{"/": ".", "": ".", "/etc/": "etc", "etc/x": "etc/x", "/../../etc": "etc", "a/../../b": "b"} {
		if got := RelPath(in); got != want {
			t.Errorf("RelPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRelPath: whatever a request sends, the path stays below the root.
func FuzzRelPath(f *testing.F) {
	for _, s := range []string{"/", "../..", "a/../../b", "//x//", "./.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r := RelPath(p)
		if r == ".." || strings.HasPrefix(r, "../") || strings.HasPrefix(r, "/") || path.Clean(r) != r {
			t.Fatalf("RelPath(%q) = %q climbs out of the root or is not clean", p, r)
		}
	})
}
