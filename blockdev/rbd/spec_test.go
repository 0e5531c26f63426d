package rbd

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in   string
		want Spec
		name string // ImageName()
	}{
		{"rbd:volumes/vol-1", Spec{Pool: "volumes", Image: "vol-1"}, "rbd:volumes/vol-1"},
		{"rbd:volumes/vol-1@snap-a", Spec{Pool: "volumes", Image: "vol-1", Snap: "snap-a"}, "rbd:volumes/vol-1"},
		{"rbd:p/ns/img@s", Spec{Pool: "p", Namespace: "ns", Image: "img", Snap: "s"}, "rbd:p/ns/img"},
	}
	for _, tc := range tests {
		got, err := ParseSpec(tc.in)
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.ImageName() != tc.name || got.String() != tc.in {
			t.Errorf("%q: ImageName %q, String %q", tc.in, got.ImageName(), got.String())
		}
	}
	for _, bad := range []string{"volumes/vol", "rbd:", "rbd:vol", "rbd:/vol", "rbd:p/", "rbd:p/img@", "rbd:a/b/c/d", "rbd:p//i", "rbd:p/i@a@b"} {
		if _, err := ParseSpec(bad); !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseSpec(%q): err = %v, want ErrBadSpec", bad, err)
		}
	}
	if !IsSpec("rbd:x") || IsSpec("/dev/rbd0") {
		t.Error("IsSpec")
	}
}

func TestSnapNames(t *testing.T) {
	const repo = "0197c2a4-5e1b-7c3d-8e9f-0123456789ab"
	at := time.Date(2026, 11, 25, 17, 0, 0, 123, time.UTC)
	name := SnapName(repo, at, "ab12")
	if want := "cairn-0197c2a4-20261125T170000.000000123Z-ab12"; name != want {
		t.Errorf("SnapName = %q, want %q", name, want)
	}
	if !IsManaged(repo, name) || !strings.HasPrefix(name, SnapPrefix) {
		t.Errorf("%q not recognised as managed", name)
	}
	if IsManaged("ffffffff-0000", name) || IsManaged(repo, "cairn-manual") || IsManaged(repo, "nightly") {
		t.Error("IsManaged claims a foreign snapshot")
	}
}
