package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// countKind counts the stored objects of kind.
func countKind(t *testing.T, s stateStore, kind string) int {
	t.Helper()
	n := 0
	if err := s.loadAll(kind, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedCount counts the objects of kind in a closed appliance's data dir.
func storedCount(t *testing.T, dataDir, kind string) int {
	t.Helper()
	s, err := openBoltStore(filepath.Join(dataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	return countKind(t, s, kind)
}

func openTestStore(t *testing.T, path string) *boltStore {
	t.Helper()
	s, err := openBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.close() })
	return s
}

func loadMap(t *testing.T, s stateStore, kind string) map[string]string {
	t.Helper()
	m := map[string]string{}
	var ids []string
	if err := s.loadAll(kind, func(id string, b []byte) error {
		m[id] = string(b)
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("loadAll order %v, want sorted", ids)
	}
	return m
}

// TestStateStoreContract: put replaces, delete is idempotent, kinds are
// apart, and everything survives a reopen.
func TestStateStoreContract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTestStore(t, path)
	for _, step := range []error{
		s.put("plans", "b", map[string]int{"v": 1}),
		s.put("plans", "a", map[string]int{"v": 2}),
		s.put("plans", "b", map[string]int{"v": 3}),
		s.put("checkpoints", "a", "cp"),
		s.delete("plans", "a"),
		s.delete("plans", "a"),
		s.delete("no-such-kind", "x"),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if err := s.put("plans", "bad", func() {}); err == nil {
		t.Fatal("put of an unencodable value succeeded")
	}
	want := map[string]string{"b": `{"v":3}`}
	if got := loadMap(t, s, "plans"); !mapsEqual(got, want) {
		t.Fatalf("plans %v, want %v", got, want)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTestStore(t, path)
	if got := loadMap(t, s2, "plans"); !mapsEqual(got, want) {
		t.Fatalf("after reopen: plans %v, want %v", got, want)
	}
	if got := loadMap(t, s2, "checkpoints"); got["a"] != `"cp"` || len(got) != 1 {
		t.Fatalf("after reopen: checkpoints %v", got)
	}
	wantErr := errors.New("stop")
	err := s2.loadAll("plans", func(string, []byte) error { return wantErr })
	if !errors.Is(err, wantErr) || !strings.Contains(err.Error(), "plans b") {
		t.Fatalf("loadAll error %v, want it wrapped with the kind and ID", err)
	}
	if _, err := openBoltStore(path); !errors.Is(err, ErrStateLocked) {
		t.Fatalf("second open while the first holds it: %v, want ErrStateLocked", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// writeOldState writes objects in the earlier releases' layout,
// DIR/state/KIND/ID.json, as their store did (indented JSON).
func writeOldState(t *testing.T, dataDir, kind, id string, v any) {
	t.Helper()
	d := filepath.Join(dataDir, "state", kind)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, id+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStateMigration: an appliance opened on a data dir of the JSON
// layout finds its objects, in the database from then on, and the old
// files are moved aside.
func TestStateMigration(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	created := time.Date(2029, 5, 6, 7, 8, 9, 0, time.UTC)
	plan := &Plan{ID: NewUUID(), ProjectID: "proj", Name: "old plan", ProviderID: ProviderID, CreatedAt: created}
	trig := &Trigger{ID: NewUUID(), ProjectID: "proj", Name: "nightly", Type: "time",
		Properties: map[string]string{"pattern": "0 2 * * *"}, CreatedAt: created}
	writeOldState(t, cfg.DataDir, "plans", plan.ID, plan)
	writeOldState(t, cfg.DataDir, "triggers", trig.ID, trig)
	writeOldState(t, cfg.DataDir, "quotas", "proj", &Quota{ID: "proj", Plans: 7})
	// A crashed write of the old store and a stray file are ignored.
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "state", "plans", ".tmp-123"), []byte("{trunc"), 0o600); err != nil {
		t.Fatal(err)
	}

	e := openEnv(t, cfg, clk, false)
	if p, err := e.a.GetPlan("proj", plan.ID); err != nil || p.Name != "old plan" || !p.CreatedAt.Equal(created) {
		t.Fatalf("migrated plan %+v, %v", p, err)
	}
	if tr, err := e.a.GetTrigger("proj", trig.ID); err != nil || tr.Properties["pattern"] != "0 2 * * *" {
		t.Fatalf("migrated trigger %+v, %v", tr, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old state directory is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "state.json-migrated", "plans", plan.ID+".json")); err != nil {
		t.Fatalf("the old files were not moved aside: %v", err)
	}
	if err := e.a.DeleteTrigger("proj", trig.ID); err != nil {
		t.Fatal(err)
	}
	e.stop()

	// Reopened, the database alone holds the state: the deletion stays.
	e2 := openEnv(t, cfg, clk, false)
	if _, err := e2.a.GetPlan("proj", plan.ID); err != nil {
		t.Fatalf("plan after reopen: %v", err)
	}
	if _, err := e2.a.GetTrigger("proj", trig.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted trigger after reopen: %v", err)
	}
	if n := countKind(t, e2.a.st, "quotas"); n != 1 {
		t.Fatalf("%d quotas, want 1", n)
	}
}

// TestStateMigrationDamagedFile: a damaged JSON file stops the migration
// with its name, and leaves the old layout in place for the operator.
func TestStateMigrationDamagedFile(t *testing.T) {
	cfg := testConfig(t)
	writeOldState(t, cfg.DataDir, "plans", "p1", &Plan{ID: "p1"})
	bad := filepath.Join(cfg.DataDir, "state", "plans", "p2.json")
	if err := os.WriteFile(bad, []byte(`{"id": "p2", "na`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), cfg, Options{Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("open with a damaged state file: %v, want an error naming %s", err, bad)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Fatalf("the old state was moved despite the failure: %v", err)
	}
}

// TestStateDamagedDatabase: a truncated or overwritten state.db is an
// error naming the file, never a panic or a fault.
func TestStateDamagedDatabase(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s := openTestStore(t, good)
	for i := range 300 {
		if err := s.put("checkpoints", fmt.Sprintf("cp-%04d", i), map[string]string{"pad": strings.Repeat("x", 200)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	n := len(orig)
	type damage struct {
		name string
		b    func() []byte
	}
	var cases []damage
	for _, l := range []int{1, 16, 100, 4095, 4096, 8191, 8192, 12288, n / 2, n - 4096, n - 1} {
		cases = append(cases, damage{fmt.Sprintf("truncated to %d", l), func() []byte { return orig[:l] }})
	}
	overwrite := func(off, len int) func() []byte {
		return func() []byte {
			b := slices.Clone(orig)
			for i := off; i < off+len && i < n; i++ {
				b[i] ^= 0xA5
			}
			return b
		}
	}
	cases = append(cases,
		damage{"both meta pages", func() []byte { b := overwrite(0, 64)(); copy(b[4096:], b[:64]); return b }},
		damage{"both meta pages zeroed", func() []byte { b := slices.Clone(orig); clear(b[:8192]); return b }},
		damage{"garbage", func() []byte { return []byte(strings.Repeat("not a database ", 1000)) }},
	)
	for off := 8192; off < n; off += 4096 {
		cases = append(cases, damage{fmt.Sprintf("page at %d", off), overwrite(off, 32)})
	}
	strict := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(p, tc.b(), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := openBoltStore(p)
			if err == nil {
				// Cutting off only the file's preallocated tail loses
				// nothing, and a flip inside a value is invisible to
				// bbolt (it has no checksums on data pages): the
				// appliance's JSON decoding then names the object.
				intact := 0
				err = s.loadAll("checkpoints", func(id string, b []byte) error {
					var v map[string]string
					if err := json.Unmarshal(b, &v); err != nil {
						return err
					}
					if len(v["pad"]) == 200 {
						intact++
					}
					return nil
				})
				_ = s.close()
				if err != nil && !strings.Contains(err.Error(), p) {
					t.Fatalf("load error %v does not name %s", err, p)
				}
				if !strings.HasPrefix(tc.name, "page") && (err != nil || intact != 300) {
					t.Fatalf("opened a database %s and found %d of 300 objects intact (%v)", tc.name, intact, err)
				}
				return
			}
			strict++
			if !errors.Is(err, ErrStateDamaged) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want ErrStateDamaged naming %s", err, p)
			}
		})
	}
	if strict == 0 {
		t.Fatal("no damage was detected at all")
	}
}
