package main

import (
	"io/fs"
	"testing"
)

func TestParseFileSpec(t *testing.T) {
	for in, want := range map[string]fileSpec{
		"0197c2a4":        {id: "0197c2a4"},
		"0197c2a4:":       {id: "0197c2a4"},
		"0197c2a4:1":      {id: "0197c2a4", file: "part1.raw"},
		"0197c2a4:part12": {id: "0197c2a4", file: "part12.raw"},
		"0197c2a4:disk":   {id: "0197c2a4", file: "disk.raw"},
		"0197c2a4:0":      {id: "0197c2a4", file: "disk.raw"},
	} {
		got, err := parseFileSpec(in)
		if err != nil || got != want {
			t.Errorf("parseFileSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":1", "0197c2a4:x", "0197c2a4:01", "0197c2a4:part", "0197c2a4:1:2", "0197c2a4:../x"} {
		if _, err := parseFileSpec(in); err == nil {
			t.Errorf("parseFileSpec(%q) accepted", in)
		}
	}
}

func TestRelPath(t *testing.T) {
	for in, want := range map[string]string{"/": ".", "": ".", "/etc/": "etc", "etc/x": "etc/x", "/../../etc": "etc", "a/../../b": "b"} {
		if got := relPath(in); got != want {
			t.Errorf("relPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLsMode(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		fs.ModeDir | 0o755:                        "drwxr-xr-x",
		fs.ModeSymlink | 0o777:                    "lrwxrwxrwx",
		0o4755&^0o4000 | fs.ModeSetuid:            "-rwsr-xr-x",
		fs.ModeDir | fs.ModeSticky | 0o777:        "drwxrwxrwt",
		fs.ModeSetgid | 0o640:                     "-rw-r-S---",
		fs.ModeDevice | fs.ModeCharDevice | 0o620: "crw--w----",
	} {
		if got := lsMode(m); got != want {
			t.Errorf("lsMode(%v) = %q, want %q", m, got, want)
		}
	}
}

func TestCLIMountUsage(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": t.TempDir()}}
	c.fail(exitUsage, "accepts 1 arg", "mount")
	c.fail(exitUsage, "needs an argument", "mount", t.TempDir(), "--allow-other")
	c.fail(exitUsage, "name an existing group", "mount", t.TempDir(), "--allow-other", "no-such-group-cairn")
	c.fail(exitUsage, "bad partition", "files", "ls", "0197:x")
	c.fail(exitUsage, "required flag", "files", "restore", "0197", "/etc")
}
