package dedup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn/dedup/store"
)

// configPath is where the local store keeps config copy i.
func configPath(r *Repository, i int) string {
	return filepath.Join(r.Dir(), "shards", strconv.Itoa(i), configName)
}

// logLines collects what a repository logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) containing(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestConfigCopyDamage damages the config copy in each of the k+m shard
// stores in turn: the repository still opens, the warning names the
// damaged copy and no other, verify reports it, and repair rewrites it.
func TestConfigCopyDamage(t *testing.T) {
	ctx := context.Background()
	damages := []struct {
		name  string
		apply func(t *testing.T, path string)
		want  string
	}{
		{"flip JSON byte", func(t *testing.T, p string) { flipByte(t, p, 0) }, "corrupt"},
		{"flip ID digit", func(t *testing.T, p string) { flipByte(t, p, 1) }, "corrupt"},
		{"missing", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
		{"sparse 1 TiB", func(t *testing.T, p string) {
			if err := os.Truncate(p, 1<<40); err != nil {
				t.Fatal(err)
			}
		}, "corrupt"},
		{"empty", func(t *testing.T, p string) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}, "corrupt"},
	}
	r := openDamageRepo(t, 4, 2, nil)
	dir := r.Dir()
	if _, err := r.Backup(ctx, newMemSource("vol", randomData(41, 200<<10)), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	clean, err := os.ReadFile(filepath.Join(dir, "shards", "0", configName))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range damages {
		for i := range 6 {
			t.Run(d.name+" in store "+strconv.Itoa(i), func(t *testing.T) {
				p := filepath.Join(dir, "shards", strconv.Itoa(i), configName)
				d.apply(t, p)
				var logs logLines
				r, err := Open(ctx, dir, Options{NoSync: true, Log: logs.log})
				if err != nil {
					t.Fatalf("open with copy %d damaged: %v", i, err)
				}
				defer r.Close()
				warned := logs.containing("config copy")
				want := fmt.Sprintf("shard store %d (", i)
				if len(warned) != 1 || !strings.Contains(warned[0], want) {
					t.Fatalf("warnings %q, want one naming %q", warned, want)
				}
				rep, err := r.Verify(ctx, VerifyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK || len(rep.DamagedShards) != 1 || rep.DamagedShards[0].Shard != i ||
					!strings.HasPrefix(rep.DamagedShards[0].Problem, d.want) {
					t.Fatalf("verify %+v, want config copy %d reported %s", rep, i, d.want)
				}
				fixed, err := r.Repair(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(fixed.Rewritten) != 1 || fixed.Rewritten[0] != (ShardDamage{Object: configName, Shard: i, Problem: rep.DamagedShards[0].Problem}) {
					t.Fatalf("repair %+v, want config copy %d rewritten", fixed, i)
				}
				if got, err := os.ReadFile(p); err != nil || string(got) != string(clean) {
					t.Fatalf("config copy %d after repair: %v", i, err)
				}
				if rep, err := r.Verify(ctx, VerifyOptions{}); err != nil || !rep.OK {
					t.Fatalf("verify after repair: %+v, %v", rep, err)
				}
			})
		}
	}
}

// flipByte changes one byte of a config copy: which=0 breaks the JSON, 1
// changes a digit of the repository ID so the copy parses but describes
// another repository.
func flipByte(t *testing.T, p string, which int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	switch which {
	case 0:
		b[0] ^= 0x5a
	case 1:
		i := strings.Index(string(b), `"id": "`) + len(`"id": "`)
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConfigNoMajority: when the valid copies split evenly between two
// configs, nothing opens and the error names the stores holding each.
func TestConfigNoMajority(t *testing.T) {
	ctx := context.Background()
	r := openDamageRepo(t, 2, 2, nil)
	other := openDamageRepo(t, 2, 2, nil)
	dir := r.Dir()
	r.Close()
	for _, i := range []int{1, 3} {
		b, err := os.ReadFile(configPath(other, i))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(configPath(r, i), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(ctx, dir, Options{NoSync: true})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("open with a 2:2 split: %v, want ErrCorrupt saying there is no majority", err)
	}
	for _, want := range []string{r.Config().ID, other.Config().ID, "shard stores 0 (", "2 (", "1 (", "3 ("} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestChooseConfig covers the vote itself, store by store.
func TestChooseConfig(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfgA, _, _ := newConfig(InitOptions{DataShards: 2, ParityShards: 1}, now)
	cfgB, _, _ := newConfig(InitOptions{DataShards: 2, ParityShards: 1}, now)
	a, _ := json.MarshalIndent(cfgA, "", "  ")
	b, _ := json.MarshalIndent(cfgB, "", "  ")
	aSpaced := append([]byte(" "), a...)
	notFound := fmt.Errorf("get config: %w", store.ErrNotFound)
	cases := []struct {
		name    string
		copies  [][]byte // nil: not found
		wantID  string
		damaged []int
		errIs   error
	}{
		{"all good", [][]byte{a, a, a}, cfgA.ID, nil, nil},
		{"one flipped", [][]byte{a, []byte("{garbage"), a}, cfgA.ID, []int{1}, nil},
		{"first flipped", [][]byte{[]byte("{garbage"), a, a}, cfgA.ID, []int{0}, nil},
		{"one missing", [][]byte{a, nil, a}, cfgA.ID, []int{1}, nil},
		{"one left", [][]byte{nil, nil, a}, cfgA.ID, []int{0, 1}, nil},
		{"outvoted", [][]byte{b, a, a}, cfgA.ID, []int{0}, nil},
		{"same config, other bytes", [][]byte{aSpaced, a, a}, cfgA.ID, []int{0}, nil},
		{"tie", [][]byte{a, b, nil}, "", nil, ErrCorrupt},
		{"tie after damage", [][]byte{a, b, []byte("x")}, "", nil, ErrCorrupt},
		{"none", [][]byte{nil, nil, nil}, "", nil, ErrNoRepository},
		{"none valid", [][]byte{[]byte("x"), nil, []byte("{}")}, "", nil, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			copies := make([]configCopy, len(c.copies))
			for i, raw := range c.copies {
				copies[i] = configCopy{index: i, store: "s" + strconv.Itoa(i), raw: raw}
				if raw == nil {
					copies[i].err = notFound
				}
			}
			ch, err := chooseConfig(copies)
			if c.errIs != nil {
				if !errors.Is(err, c.errIs) {
					t.Fatalf("got %v, want %v", err, c.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var damaged []int
			for _, d := range ch.damage {
				damaged = append(damaged, d.Shard)
			}
			if ch.cfg.ID != c.wantID || fmt.Sprint(damaged) != fmt.Sprint(c.damaged) || string(ch.ref) != string(a) {
				t.Fatalf("chose %s with damage %v, want %s with %v", ch.cfg.ID, damaged, c.wantID, c.damaged)
			}
		})
	}
}
