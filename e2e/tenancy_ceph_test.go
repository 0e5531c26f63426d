//go:build ceph

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestApplianceRadosNamespacePerProject: with repository_pools, each
// project's shards live in its own RADOS namespace of the same pools, no
// pack name appears in both, and a project's repository survives the loss
// of its local directory (the appliance connects to the namespace again).
func TestApplianceRadosNamespacePerProject(t *testing.T) {
	r := requireRados(t)
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(vols, "same.img")
	writeRandomFile(t, src, 22, 2*mib+3)
	cfg := map[string]any{"repository_pools": []string{r.pool}, "repository_namespace": r.namespace + "-{project_id}",
		"ceph_conf": os.Getenv("CEPH_CONF"), "data_shards": 2, "parity_shards": 1}
	a := startAppliance(t, dir, cfg)
	const A, B = "ns-a", "ns-b"
	cps := map[string]string{}
	for _, p := range []string{A, B} {
		cp := a.createCheckpoint(p, a.createFilePlan(p, "same", src))
		if c := a.waitCheckpoint(p, cp); c["status"] != "available" {
			t.Fatalf("checkpoint of %s: %v\n%s", p, c, clip(a.stderr.String()))
		}
		cps[p] = cp
	}
	a.stop()

	packs := map[string][]string{}
	for _, p := range []string{A, B} {
		ns := &radosT{t: t, pool: r.pool, namespace: r.namespace + "-" + p}
		for _, o := range ns.objects(r.pool, "") {
			if strings.Contains(o, "packs/") {
				packs[p] = append(packs[p], o[strings.Index(o, "packs/"):])
			}
		}
		if len(packs[p]) == 0 {
			t.Fatalf("namespace of project %s holds no packs", p)
		}
	}
	for _, o := range packs[A] {
		if slices.Contains(packs[B], o) {
			t.Fatalf("pack %s is in both projects' namespaces", o)
		}
	}
	if objs := r.objects(r.pool, ""); len(objs) != 0 {
		t.Fatalf("the test's own namespace holds %d objects; projects must stay in theirs", len(objs))
	}

	// Lose the local directories: the appliance connects to the
	// namespaces again and restores from them.
	if err := os.RemoveAll(filepath.Join(dir, "projects")); err != nil {
		t.Fatal(err)
	}
	a = startAppliance(t, dir, cfg)
	id := fileInstanceID(t, a, A, src)
	out := filepath.Join(dir, "restores", "a.out")
	a.restoreFiles(A, cps[A], map[string]string{id: out})
	if fileHash(t, out) != fileHash(t, src) {
		t.Fatal("restore from the reconnected namespace differs from the source")
	}
	a.stop()
}
