package appliance

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTriggerStartEnd: a scheduled operation fires only between its
// trigger's start_time and end_time.
func TestTriggerStartEnd(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2030, 1, 1, 0, m, 10, 0, time.UTC) }
	for _, tc := range []struct {
		name  string
		props map[string]string
		fires []int // the minutes, of 5, 10, 15, 20, at which a checkpoint appears
	}{
		{"no bounds", map[string]string{}, []int{5, 10, 15, 20}},
		{"start", map[string]string{"start_time": "2030-01-01 00:12:00"}, []int{15, 20}},
		{"start on a fire time", map[string]string{"start_time": "2030-01-01 00:10:00"}, []int{10, 15, 20}},
		{"end", map[string]string{"end_time": "2030-01-01 00:12:00"}, []int{5, 10}},
		{"both", map[string]string{"start_time": "2030-01-01 00:07:00", "end_time": "2030-01-01 00:15:00"}, []int{10, 15}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC))
			e := openEnv(t, testConfig(t), clk, true)
			id, _ := e.volume("a.img", 4<<10)
			p := e.plan("proj", id)
			props := map[string]string{"pattern": "*/5 * * * *", "window": "60"}
			for k, v := range tc.props {
				props[k] = v
			}
			tr, err := e.a.CreateTrigger("proj", "t", "time", props)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.a.CreateScheduledOperation(context.Background(), "proj", "op", "", "protect", tr.ID,
				map[string]string{"plan_id": p.ID, "provider_id": ProviderID}, nil); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			e.a.Tick(ctx) // computes the first fire time
			var got []int
			for _, m := range []int{5, 10, 15, 20} {
				clk.Set(at(m))
				before := len(waitIdle(t, e))
				e.a.Tick(ctx)
				if len(waitIdle(t, e)) > before {
					got = append(got, m)
				}
			}
			if !slices.Equal(got, tc.fires) {
				t.Fatalf("fired at minutes %v, want %v", got, tc.fires)
			}
		})
	}
}

// waitIdle waits until no checkpoint of "proj" is being made and returns
// them.
func waitIdle(t *testing.T, e *testEnv) []*Checkpoint {
	t.Helper()
	for i := 0; ; i++ {
		cps, _ := e.a.Checkpoints("proj", ProviderID)
		busy := false
		for _, c := range cps {
			busy = busy || c.Status != CheckpointAvailable
		}
		if !busy {
			return cps
		}
		if i > 6000 {
			t.Fatalf("checkpoints still busy: %+v", cps)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTriggerOverflow: periods and windows whose arithmetic would
// overflow are refused with ErrInvalid, not wrapped into nonsense.
func TestTriggerOverflow(t *testing.T) {
	e := openEnv(t, testConfig(t), newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), false)
	for _, tc := range []struct {
		name  string
		props map[string]string
		msg   string
	}{
		{"weekly interval", map[string]string{"format": "calendar", "pattern": "RRULE:FREQ=WEEKLY;INTERVAL=99999999999"}, "INTERVAL"},
		{"secondly interval past int64", map[string]string{"format": "calendar", "pattern": "RRULE:FREQ=SECONDLY;INTERVAL=9223372036854775807"}, "INTERVAL"},
		{"interval past int", map[string]string{"format": "calendar", "pattern": "RRULE:FREQ=DAILY;INTERVAL=99999999999999999999"}, "INTERVAL"},
		{"yearly interval", map[string]string{"format": "calendar", "pattern": "RRULE:FREQ=YEARLY;INTERVAL=1000"}, "INTERVAL"},
		{"window", map[string]string{"pattern": "0 * * * *", "window": "9300000000"}, "window"},
		{"window a year", map[string]string{"pattern": "0 * * * *", "window": "31536000"}, "window"},
		{"end not after start", map[string]string{"pattern": "0 * * * *", "start_time": "2030-01-01 05:00:00", "end_time": "2030-01-01 05:00:00"}, "end_time"},
		{"end before the first fire", map[string]string{"pattern": "0 * * * *", "start_time": "2030-01-01 05:01:00", "end_time": "2030-01-01 05:59:00"}, "never fires"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.a.CreateTrigger("proj", "t", "time", tc.props)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want ErrInvalid mentioning %q", err, tc.msg)
			}
		})
	}
	tr, err := e.a.CreateTrigger("proj", "t", "time", map[string]string{"pattern": "0 0 * * *"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := e.volume("a.img", 4<<10)
	p := e.plan("proj", id)
	_, err = e.a.CreateScheduledOperation(context.Background(), "proj", "op", "", "protect", tr.ID,
		map[string]string{"plan_id": p.ID, "provider_id": ProviderID, "retention_duration": "9999999999"}, nil)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "retention_duration") {
		t.Fatalf("retention_duration past int64 nanoseconds: err %v, want ErrInvalid", err)
	}
}
