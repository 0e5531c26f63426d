package dedup

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCP makes a checkpoint of source created at the given UTC time.
func testCP(id, source, at string) *Checkpoint {
	t, err := time.Parse("2006-01-02 15:04", at)
	if err != nil {
		panic(err)
	}
	return &Checkpoint{ID: id, Source: source, CreatedAt: t}
}

func ids(cps []*Checkpoint) string {
	var s []string
	for _, cp := range cps {
		s = append(s, cp.ID)
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func TestForgetPlan(t *testing.T) {
	// 2024-01-01 is a Monday: ISO week 1 of 2024.
	series := []*Checkpoint{
		testCP("a", "vol", "2023-12-30 10:00"), // Sat, week 2023-52, Dec
		testCP("b", "vol", "2024-01-01 09:00"), // Mon, week 1, Jan
		testCP("c", "vol", "2024-01-01 18:00"), // same day, later
		testCP("d", "vol", "2024-01-03 08:00"), // Wed, week 1
		testCP("e", "vol", "2024-01-08 08:00"), // Mon, week 2
		testCP("f", "vol", "2024-02-01 08:00"), // Thu, week 5, Feb
		testCP("g", "vol", "2024-02-01 20:00"), // same day, later
	}
	other := []*Checkpoint{
		testCP("x", "db", "2024-01-01 10:00"),
		testCP("y", "db", "2024-01-02 10:00"),
	}
	both := append(slices.Clone(series), other...)
	cases := []struct {
		name       string
		cps        []*Checkpoint
		p          ForgetPolicy
		explicit   []string
		keep, drop string
	}{
		{"keep last 2", series, ForgetPolicy{KeepLast: 2}, nil, "f g", "a b c d e"},
		{"keep last more than exist", series, ForgetPolicy{KeepLast: 10}, nil, "a b c d e f g", ""},
		{"daily 3", series, ForgetPolicy{KeepDaily: 3}, nil, "d e g", "a b c f"},
		{"daily keeps newest of day", series, ForgetPolicy{KeepDaily: 5}, nil, "a c d e g", "b f"},
		{"weekly 2", series, ForgetPolicy{KeepWeekly: 2}, nil, "e g", "a b c d f"},
		{"weekly 4 crosses the year", series, ForgetPolicy{KeepWeekly: 4}, nil, "a d e g", "b c f"},
		{"monthly 2", series, ForgetPolicy{KeepMonthly: 2}, nil, "e g", "a b c d f"},
		{"monthly unlimited", series, ForgetPolicy{KeepMonthly: -1}, nil, "a e g", "b c d f"},
		{"last 1 + monthly 3", series, ForgetPolicy{KeepLast: 1, KeepMonthly: 3}, nil, "a e g", "b c d f"},
		{"last 3 + weekly 3", series, ForgetPolicy{KeepLast: 3, KeepWeekly: 3}, nil, "d e f g", "a b c"},
		{"daily 2 + weekly 2 + monthly 3", series, ForgetPolicy{KeepDaily: 2, KeepWeekly: 2, KeepMonthly: 3}, nil, "a e g", "b c d f"},
		{"per source", both, ForgetPolicy{KeepLast: 1}, nil, "g y", "a b c d e f x"},
		{"source filter", both, ForgetPolicy{KeepLast: 1, Source: "db"}, nil, "y", "x"},
		{"explicit beats rules", series, ForgetPolicy{KeepLast: 2}, []string{"g"}, "f", "a b c d e g"},
		{"explicit only", both, ForgetPolicy{}, []string{"c", "x"}, "a b d e f g y", "c x"},
		{"explicit outside source", both, ForgetPolicy{KeepLast: 5, Source: "db"}, []string{"a"}, "x y", "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := make(map[string]bool)
			for _, id := range c.explicit {
				ex[id] = true
			}
			res := forgetPlan(c.cps, c.p, ex, time.UTC)
			if got := ids(res.Keep); got != c.keep {
				t.Errorf("keep %q, want %q", got, c.keep)
			}
			if got := ids(res.Remove); got != c.drop {
				t.Errorf("remove %q, want %q", got, c.drop)
			}
		})
	}
}

func TestForget(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	var made []*Checkpoint
	for i := range 3 {
		cp, err := r.Backup(ctx, newMemSource("vol", randomData(uint64(i), 70<<10)), BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, cp)
	}
	if _, err := r.Forget(ctx, ForgetPolicy{}); err == nil {
		t.Fatal("forget without a policy succeeded")
	}
	res, err := r.Forget(ctx, ForgetPolicy{KeepLast: 1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keep) != 1 || len(res.Remove) != 2 {
		t.Fatalf("dry run keeps %d removes %d, want 1 and 2", len(res.Keep), len(res.Remove))
	}
	if cps, _ := r.Checkpoints(ctx); len(cps) != 3 {
		t.Fatalf("dry run deleted: %d checkpoints left", len(cps))
	}
	// An explicit prefix of the oldest, plus keep-last 2: only it goes.
	res, err = r.Forget(ctx, ForgetPolicy{KeepLast: 2, IDs: []string{made[0].ID[:30]}})
	if err != nil {
		t.Fatal(err)
	}
	cps, err := r.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Remove) != 1 || res.Remove[0].ID != made[0].ID || len(cps) != 2 {
		t.Fatalf("removed %v, %d left", ids(res.Remove), len(cps))
	}
	// Every checkpoint is independently deletable: the survivors restore.
	for _, cp := range cps {
		want := randomData(uint64(slices.IndexFunc(made, func(m *Checkpoint) bool { return m.ID == cp.ID })), 70<<10)
		if got := restoreBytes(t, r, cp.ID, cp.Size); string(got) != string(want) {
			t.Fatalf("checkpoint %s restores wrong bytes", cp.ID)
		}
	}
}
