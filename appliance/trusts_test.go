package appliance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn/internal/openstack"
)

// fakeTrusts is Keystone's trust store as the appliance sees it.
type fakeTrusts struct {
	mu      sync.Mutex
	n       int
	live    map[string]string // trust ID -> "token user project roles" it was made with
	checked []string
	deleted []string
	// createErr, checkErr and deleteErr, when set, are the answers.
	createErr, checkErr, deleteErr error
}

func (f *fakeTrusts) CreateTrust(_ context.Context, token, trustor, project string, roles []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.createErr != nil {
		return "", f.createErr
	}
	f.n++
	id := fmt.Sprintf("trust-%d", f.n)
	f.live[id] = strings.Join([]string{token, trustor, project, strings.Join(roles, ",")}, " ")
	return id, nil
}

func (f *fakeTrusts) CheckTrust(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = append(f.checked, id)
	return f.checkErr
}

func (f *fakeTrusts) DeleteTrust(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, id)
	if f.deleteErr != nil {
		return f.deleteErr
	}
	delete(f.live, id)
	return nil
}

// TestScheduledOperationTrust: a Keystone user's scheduled operation gets
// a trust made with the user's token, roles and project, kept in the
// stored operation; Keystone refusing it refuses the operation (denied or
// unavailable); without a user there is none; deleting the operation
// deletes the trust, and a failing delete still deletes the operation.
func TestScheduledOperationTrust(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC))
	cfg := testConfig(t)
	e := openEnv(t, cfg, clk, false)
	ft := &fakeTrusts{live: map[string]string{}}
	e.a.trusts = ft
	id, _ := e.volume("a.img", 1<<10)
	p := e.plan("proj", id)
	tr, err := e.a.CreateTrigger("proj", "daily", "time", map[string]string{"pattern": "0 3 * * *"})
	if err != nil {
		t.Fatal(err)
	}
	def := map[string]string{"plan_id": p.ID, "provider_id": ProviderID}
	alice := &Trustor{UserID: "alice", Token: "alice-token", Roles: []string{"member", "reader"}}

	noauth, err := e.a.CreateScheduledOperation(ctx, "proj", "noauth", "", "protect", tr.ID, def, nil)
	if err != nil || noauth.TrustID != "" {
		t.Fatalf("operation without a user: %+v, %v; want one without a trust", noauth, err)
	}
	op, err := e.a.CreateScheduledOperation(ctx, "proj", "op", "", "protect", tr.ID, def, alice)
	if err != nil {
		t.Fatal(err)
	}
	if op.TrustID != "trust-1" || ft.live["trust-1"] != "alice-token alice proj member,reader" {
		t.Fatalf("operation's trust %q, Keystone's trusts %v; want trust-1 from alice's token, for proj, with her roles", op.TrustID, ft.live)
	}

	refusals := []struct {
		name string
		err  error
		want error
	}{
		{"keystone refuses", fmt.Errorf("keystone answered 403: trustor lacks role: %w", openstack.ErrDenied), ErrDenied},
		{"keystone down", errors.New("connection refused"), ErrUnavailable},
	}
	for _, r := range refusals {
		ft.createErr = r.err
		_, err := e.a.CreateScheduledOperation(ctx, "proj", r.name, "", "protect", tr.ID, def, alice)
		if !errors.Is(err, r.want) || !strings.Contains(err.Error(), r.err.Error()) {
			t.Errorf("%s: %v, want %v with Keystone's reason", r.name, err, r.want)
		}
	}
	ft.createErr = nil
	if n := len(e.a.ScheduledOperations("proj")); n != 2 {
		t.Fatalf("%d scheduled operations, want the 2 created (none of the refused)", n)
	}

	// The trust is stored state.
	e.stop()
	e = openEnv(t, cfg, clk, false)
	e.a.trusts = ft
	if o, err := e.a.GetScheduledOperation("proj", op.ID); err != nil || o.TrustID != "trust-1" {
		t.Fatalf("after a reopen: %+v, %v; want trust-1", o, err)
	}

	if err := e.a.DeleteScheduledOperation(ctx, "proj", op.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := ft.live["trust-1"]; ok || !slices.Equal(ft.deleted, []string{"trust-1"}) {
		t.Fatalf("after deleting the operation: trusts %v, deleted %v; want trust-1 deleted", ft.live, ft.deleted)
	}
	ft.deleteErr = errors.New("keystone down")
	op2, err := e.a.CreateScheduledOperation(ctx, "proj", "op2", "", "protect", tr.ID, def, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.DeleteScheduledOperation(ctx, "proj", op2.ID); err != nil {
		t.Fatalf("delete with Keystone down: %v, want the operation deleted all the same", err)
	}
	if _, err := e.a.GetScheduledOperation("proj", op2.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("operation after its delete: %v, want ErrNotFound", err)
	}
	if err := e.a.DeleteScheduledOperation(ctx, "proj", noauth.ID); err != nil || len(ft.deleted) != 2 {
		t.Fatalf("delete of the operation without a trust: %v, trusts deleted %v; want no trust delete", err, ft.deleted)
	}
}

// TestScheduledRunThroughTrust: a scheduled run checks its operation's
// trust first; a trust that no longer works fails the run, before any
// plugin, with the check's reason in the checkpoint and the operation log.
func TestScheduledRunThroughTrust(t *testing.T) {
	tests := []struct {
		name     string
		checkErr error
		want     string // the checkpoint's status
	}{
		{"trust works", nil, CheckpointAvailable},
		{"trust broken", fmt.Errorf("keystone trust trust-1 no longer lets cairn act: recreate the scheduled operation: %w", openstack.ErrTrust), CheckpointError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			t0 := time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC)
			clk := newClock(t0)
			e := openEnv(t, testConfig(t), clk, true)
			ft := &fakeTrusts{live: map[string]string{}, checkErr: tc.checkErr}
			e.a.trusts = ft
			var protects atomic.Int32
			e.hook.before = func(context.Context) error { protects.Add(1); return nil }
			id, _ := e.volume("a.img", 1<<10)
			p := e.plan("proj", id)
			tr, err := e.a.CreateTrigger("proj", "every5", "time", map[string]string{"pattern": "*/5 * * * *"})
			if err != nil {
				t.Fatal(err)
			}
			op, err := e.a.CreateScheduledOperation(ctx, "proj", "op", "", "protect", tr.ID,
				map[string]string{"plan_id": p.ID, "provider_id": ProviderID}, &Trustor{UserID: "alice", Token: "tok", Roles: []string{"member"}})
			if err != nil {
				t.Fatal(err)
			}
			e.a.Tick(ctx) // sets the next run
			clk.Set(t0.Add(5 * time.Minute))
			e.a.Tick(ctx)
			cps, _ := e.a.Checkpoints("proj", ProviderID)
			if len(cps) != 1 {
				t.Fatalf("%d checkpoints after the fire, want 1", len(cps))
			}
			c := e.waitCheckpoint("proj", cps[0].ID, CheckpointAvailable, CheckpointError)
			ft.mu.Lock()
			checked := slices.Clone(ft.checked)
			ft.mu.Unlock()
			if c.Status != tc.want || !slices.Equal(checked, []string{op.TrustID}) {
				t.Fatalf("checkpoint %s (%s), trusts checked %v; want %s after checking %s", c.Status, c.ErrorReason, checked, tc.want, op.TrustID)
			}
			if tc.checkErr == nil {
				return
			}
			if n := protects.Load(); n != 0 {
				t.Errorf("%d protections ran through a broken trust, want none", n)
			}
			var log *OperationLog
			for _, l := range e.a.OperationLogs("proj") {
				if l.CheckpointID == c.ID {
					log = &l
				}
			}
			if log == nil || log.Status != "error" || !strings.Contains(log.ErrorInfo, tc.checkErr.Error()) || !strings.Contains(log.ErrorInfo, op.ID) {
				t.Fatalf("operation log %+v, want an error naming operation %s and %q", log, op.ID, tc.checkErr)
			}
		})
	}
}
