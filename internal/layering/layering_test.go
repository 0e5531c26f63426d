package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// module is the module path of the project (go.mod).
const module = "cairn"

// layers lists every part of the tree with its rank; higher ranks sit
// higher in the stack (STYLE.md: api, mount → appliance → plugins →
// backup → blockdev, dedup → prune → the pack format → erasure-coded
// objects → shard stores). A package belongs to the layer with the longest
// matching prefix, so dedup/prune, dedup/pack, dedup/erasure,
// dedup/compress and dedup/store (and dedup/store/storetest) are layers of
// their own beneath dedup; dedup/index stays in dedup's.
//
// A package may import:
//   - packages of its own layer (e.g. dedup/store/storetest → dedup/store);
//   - packages of any strictly lower rank.
//
// Everything else fails the test. plugins ranks above backup because a
// protection plugin runs the one backup flow (package backup), which in
// turn reads devices through blockdev and stores them through dedup;
// blockdev never knows about either, nor dedup about blockdev (they share
// a rank and speak internal/extent's type). dedup/prune decides what
// prune and compaction do and reaches the repository only through an
// interface, in dedup/pack's types: it knows neither the repository nor
// its index (dedup/index shares dedup's rank). dedup/pack sits beneath it
// and above dedup/erasure, whose error values it shares. api, mount and
// image share a rank and so may not import one another. cmd, e2e
// (end-to-end tests) and scripts (helper commands such as scripts/mkimage)
// are the top: nothing may import them.
//
// A new top-level folder must be added here: an unknown project package
// fails the test rather than slipping past the check.
var layers = []layer{
	{prefix: "cmd", rank: 7},
	{prefix: "scripts", rank: 7}, // helper commands for scripts/*.sh
	{prefix: "e2e", rank: 7},     // end-to-end tests of the cairn binary
	{prefix: "api", rank: 6},
	{prefix: "mount", rank: 6},
	{prefix: "image", rank: 6},
	{prefix: "console", rank: 6}, // the web console's embedded files
	{prefix: "appliance", rank: 5},
	{prefix: "plugins", rank: 4},
	{prefix: "backup", rank: 3}, // the one backup and restore flow
	{prefix: "blockdev", rank: 2},
	{prefix: "dedup", rank: 2},
	{prefix: "dedup/prune", rank: 1},     // prune and compaction, behind an interface
	{prefix: "dedup/pack", rank: 0},      // the pack format: chunk and pack IDs, entries
	{prefix: "dedup/erasure", rank: -1},  // erasure-coded objects over the stores
	{prefix: "dedup/compress", rank: -1}, // the zstd codec, a leaf
	{prefix: "dedup/store", rank: -2},
	// internal/ holds project-wide helpers below every layer; they may
	// import nothing of the layers above.
	{prefix: "internal", rank: -3},
}

// scratch lists git-ignored top-level folders whose packages are never
// checked (they are not part of the project; see .gitignore).
var scratch = []string{"tmp"}

func isScratch(path string) bool {
	rel, ok := relPath(path)
	if !ok {
		return false
	}
	for _, s := range scratch {
		if rel == s || strings.HasPrefix(rel, s+"/") {
			return true
		}
	}
	return false
}

type layer struct {
	prefix string // path relative to the module, without a trailing slash
	rank   int
}

// layerOf returns the layer of a project import path, or false when no
// layer claims it (or the path is not a project package).
func layerOf(path string) (layer, bool) {
	rel, ok := relPath(path)
	if !ok {
		return layer{}, false
	}
	var best layer
	found := false
	for _, l := range layers {
		if rel == l.prefix || strings.HasPrefix(rel, l.prefix+"/") {
			if !found || len(l.prefix) > len(best.prefix) {
				best, found = l, true
			}
		}
	}
	return best, found
}

// relPath strips the module path; ok is false for non-project packages.
func relPath(path string) (string, bool) {
	if path == module {
		return "", true
	}
	if rel, ok := strings.CutPrefix(path, module+"/"); ok {
		return rel, true
	}
	return "", false
}

// checkImport returns an error when from may not import to. Imports of
// non-project packages are always allowed.
func checkImport(from, to string) error {
	if _, ok := relPath(to); !ok {
		return nil
	}
	lf, ok := layerOf(from)
	if !ok {
		return fmt.Errorf("%s belongs to no layer: add its top-level folder to the layers table in internal/layering/layering_test.go", from)
	}
	lt, ok := layerOf(to)
	if !ok {
		return fmt.Errorf("%s imports %s, which belongs to no layer: add its top-level folder to the layers table in internal/layering/layering_test.go", from, to)
	}
	if lf.prefix == lt.prefix || lt.rank < lf.rank {
		return nil
	}
	return fmt.Errorf("%s (layer %s, rank %d) imports %s (layer %s, rank %d): layers import downward only (STYLE.md)",
		from, lf.prefix, lf.rank, to, lt.prefix, lt.rank)
}

func TestCheckImportRules(t *testing.T) {
	tests := []struct {
		from, to string
		ok       bool
	}{
		{"cairn/dedup", "cairn/dedup/store", true},
		{"cairn/dedup/store/storetest", "cairn/dedup/store", true},
		{"cairn/dedup/store", "cairn/dedup/store/storetest", true},
		{"cairn/blockdev", "cairn/internal/extent", true},
		{"cairn/blockdev", "cairn/dedup", false}, // siblings: both speak internal/extent
		{"cairn/plugins/volume", "cairn/blockdev", true},
		{"cairn/appliance", "cairn/plugins", true},
		{"cairn/api", "cairn/appliance", true},
		{"cairn/mount/fuse", "cairn/dedup", true},
		{"cairn/cmd/cairn", "cairn/api", true},
		{"cairn/cmd/cairn", "cairn/dedup/store", true},
		{"cairn/dedup", "github.com/zeebo/blake3", true},
		{"cairn/dedup/store", "os", true},
		{"cairn/dedup", "cairn/internal/testutil", true},
		{"cairn/dedup", "cairn/dedup/prune", true},
		{"cairn/dedup/prune", "cairn/dedup/pack", true},
		{"cairn/dedup/index", "cairn/dedup/pack", true},
		{"cairn/dedup/pack", "cairn/dedup/erasure", true},
		{"cairn/dedup/prune", "cairn/internal/testutil", true},

		{"cairn/dedup", "cairn/blockdev", false},
		{"cairn/dedup/store", "cairn/dedup", false},
		{"cairn/dedup/store/storetest", "cairn/dedup", false},
		{"cairn/blockdev", "cairn/plugins", false},
		{"cairn/plugins", "cairn/appliance", false},
		{"cairn/appliance", "cairn/api", false},
		{"cairn/api", "cairn/mount", false},
		{"cairn/mount", "cairn/api", false},
		{"cairn/api", "cairn/cmd/cairn", false},
		{"cairn/scripts/mkimage", "cairn/dedup", true},
		{"cairn/dedup", "cairn/scripts/mkimage", false},
		{"cairn/e2e", "cairn/dedup", true},
		{"cairn/dedup", "cairn/e2e", false},
		{"cairn/cmd/cairn", "cairn/scripts/mkimage", false},
		{"cairn/dedup", "cairn/cmd/cairn", false},
		{"cairn/internal/testutil", "cairn/dedup", false},
		{"cairn/dedup/prune", "cairn/dedup", false},
		{"cairn/dedup/prune", "cairn/dedup/index", false}, // the index is the repository's
		{"cairn/dedup/pack", "cairn/dedup/prune", false},
		{"cairn/dedup/erasure", "cairn/dedup/pack", false},
		{"cairn/unknown", "cairn/dedup", false},
		{"cairn/dedup", "cairn/unknown", false},
	}
	for _, tt := range tests {
		t.Run(tt.from+"→"+tt.to, func(t *testing.T) {
			err := checkImport(tt.from, tt.to)
			if tt.ok && err != nil {
				t.Errorf("want allowed, got %v", err)
			}
			if !tt.ok && err == nil {
				t.Errorf("want forbidden, got allowed")
			}
		})
	}
}

// pkg is the part of `go list -json` output the check reads.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// listPackages runs `go list -e -json cairn/...` and decodes its stream.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found in PATH: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestLayering fails when any project package (including its tests) imports
// a package of a higher layer, or a project package no layer claims.
func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	var problems []string
	seen := map[string]bool{}
	add := func(kind string, p pkg, imports []string) {
		for _, imp := range imports {
			if err := checkImport(p.ImportPath, imp); err != nil {
				msg := err.Error()
				if kind != "" {
					msg += " [" + kind + "]"
				}
				if !seen[msg] {
					seen[msg] = true
					problems = append(problems, msg)
				}
			}
		}
	}
	checked := 0
	for _, p := range pkgs {
		if _, ok := relPath(p.ImportPath); !ok || isScratch(p.ImportPath) {
			continue
		}
		if _, ok := layerOf(p.ImportPath); !ok {
			problems = append(problems, fmt.Sprintf("%s belongs to no layer: add its top-level folder to the layers table in internal/layering/layering_test.go", p.ImportPath))
			continue
		}
		checked++
		add("", p, p.Imports)
		add("in-package test", p, p.TestImports)
		add("external test", p, p.XTestImports)
	}
	sort.Strings(problems)
	for _, msg := range problems {
		t.Error(msg)
	}
	t.Logf("checked the imports of %d project packages", checked)
}

// TestShippedBinaryHasNoTestCode fails when the cairn binary links package
// testing: a test helper (a repository in a temporary directory, a fake
// source) has crept into a package it ships, instead of a _test.go file or
// a …test package that only tests import.
func TestShippedBinaryHasNoTestCode(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found in PATH: %v", err)
	}
	for _, tags := range []string{"", "ceph pacific"} {
		cmd := exec.Command(goBin, "list", "-deps", "-tags", tags, "-f", "{{.ImportPath}} {{.Imports}}", module+"/cmd/cairn")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps (tags %q): %v\n%s", tags, err, stderr.Bytes())
		}
		for _, line := range strings.Split(string(out), "\n") {
			imp, imports, _ := strings.Cut(line, " ")
			for _, dep := range strings.Fields(strings.Trim(imports, "[]")) {
				if dep == "testing" && strings.HasPrefix(imp, module+"/") {
					t.Errorf("tags %q: %s imports package testing and ships in cmd/cairn", tags, imp)
				}
			}
		}
	}
}
