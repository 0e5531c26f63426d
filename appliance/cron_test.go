package appliance

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCronNext(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, time.UTC) }
	// 2030-01-01 is a Tuesday.
	now := time.Date(2030, 1, 1, 10, 7, 30, 0, time.UTC)
	for _, tc := range []struct {
		pat  string
		want []time.Time // successive fire times after now
	}{
		{"* * * * *", []time.Time{utc(2030, 1, 1, 10, 8), utc(2030, 1, 1, 10, 9)}},
		{"*/15 * * * *", []time.Time{utc(2030, 1, 1, 10, 15), utc(2030, 1, 1, 10, 30), utc(2030, 1, 1, 10, 45), utc(2030, 1, 1, 11, 0)}},
		{"5 * * * *", []time.Time{utc(2030, 1, 1, 11, 5), utc(2030, 1, 1, 12, 5)}},
		{"0 0 * * *", []time.Time{utc(2030, 1, 2, 0, 0), utc(2030, 1, 3, 0, 0)}},
		{"30 2 1 * *", []time.Time{utc(2030, 2, 1, 2, 30), utc(2030, 3, 1, 2, 30)}},
		{"0 12 * * 0", []time.Time{utc(2030, 1, 6, 12, 0), utc(2030, 1, 13, 12, 0)}},
		{"0 12 * * 7", []time.Time{utc(2030, 1, 6, 12, 0)}}, // 7 is Sunday too
		{"0 9-17/4 * * 1-5", []time.Time{utc(2030, 1, 1, 13, 0), utc(2030, 1, 1, 17, 0), utc(2030, 1, 2, 9, 0)}},
		{"10,20 10 * * *", []time.Time{utc(2030, 1, 1, 10, 10), utc(2030, 1, 1, 10, 20), utc(2030, 1, 2, 10, 10)}},
		{"7/20 * * * *", []time.Time{utc(2030, 1, 1, 10, 27), utc(2030, 1, 1, 10, 47), utc(2030, 1, 1, 11, 7)}},
		// Both day fields restricted: either matches (the 15th, or Fridays).
		{"0 0 15 * 5", []time.Time{utc(2030, 1, 4, 0, 0), utc(2030, 1, 11, 0, 0), utc(2030, 1, 15, 0, 0), utc(2030, 1, 18, 0, 0)}},
		{"0 0 29 2 *", []time.Time{utc(2032, 2, 29, 0, 0)}}, // next leap year
		{"0 0 30 2 *", []time.Time{{}}}, // never
		{"  0   0  1  1  * ", []time.Time{utc(2031, 1, 1, 0, 0)}},
	} {
		t.Run(tc.pat, func(t *testing.T) {
			s, err := ParseCron(tc.pat)
			if err != nil {
				t.Fatal(err)
			}
			at := now
			for i, w := range tc.want {
				got := s.Next(at)
				if !got.Equal(w) {
					t.Fatalf("fire %d: got %s, want %s", i, got, w)
				}
				at = got
			}
		})
	}
}

// TestCronHalfHourZone: hour steps stay on the hour in a zone whose offset
// is not a whole number of hours.
func TestCronHalfHourZone(t *testing.T) {
	loc := time.FixedZone("IST", 5*3600+1800)
	s, err := ParseCron("0 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Next(time.Date(2030, 1, 1, 10, 7, 0, 0, loc))
	if want := time.Date(2030, 1, 1, 11, 0, 0, 0, loc); !got.Equal(want) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestCronInvalid(t *testing.T) {
	for _, tc := range []struct{ pat, msg string }{
		{"", "want 5 fields"},
		{"* * * *", "want 5 fields"},
		{"* * * * * *", "want 5 fields"},
		{"60 * * * *", "out of range"},
		{"* 24 * * *", "out of range"},
		{"* * 0 * *", "out of range"},
		{"* * 32 * *", "out of range"},
		{"* * * 0 *", "out of range"},
		{"* * * 13 *", "out of range"},
		{"* * * * 8", "out of range"},
		{"-1 * * * *", "bad range"},
		{"5-1 * * * *", "bad range"},
		{"1-x * * * *", "bad range"},
		{"1- * * * *", "bad range"},
		{"*/0 * * * *", "bad step"},
		{"*/-1 * * * *", "bad step"},
		{"*/61 * * * *", "bad step"},
		{"*/x * * * *", "bad step"},
		{"1/2/3 * * * *", "bad step"},
		{"a * * * *", "bad value"},
		{"1,,2 * * * *", "bad value"},
		{"@daily", "want 5 fields"},
		{"* * * JAN *", "bad value"},
		{"99999999999999999999 * * * *", "bad value"},
	} {
		t.Run(tc.pat, func(t *testing.T) {
			_, err := ParseCron(tc.pat)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q lacks %q", err, tc.msg)
			}
		})
	}
}

func TestCalendar(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := ParseCalendar(`BEGIN:VEVENT\nRRULE:FREQ=MINUTELY;INTERVAL=5\nEND:VEVENT`, start)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(start.Add(-time.Hour)); !got.Equal(start) {
		t.Fatalf("before start: %s", got)
	}
	if got := s.Next(start.Add(7 * time.Minute)); !got.Equal(start.Add(10 * time.Minute)) {
		t.Fatalf("got %s", got)
	}
	for _, bad := range []string{"", "RRULE:FREQ=FORTNIGHTLY", "RRULE:INTERVAL=2", "RRULE:FREQ=DAILY;INTERVAL=0", "RRULE:FREQ=DAILY;INTERVAL=-3",
		"RRULE:FREQ=DAILY;BYDAY=XX", "RRULE:FREQ=DAILY;COLOUR=red", "RRULE:FREQ=DAILY;DTSTART=20300101T000000Z", "RRULE:FREQ=DAILY\nRRULE:FREQ=HOURLY"} {
		if _, err := ParseCalendar(bad, start); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestCalendarRules: the RRULE parts beyond FREQ and INTERVAL that
// Karbor's calendar triggers may use, evaluated by the library.
func TestCalendarRules(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // a Tuesday
	d := func(mo time.Month, day, h int) time.Time { return time.Date(2030, mo, day, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		rule string
		want []time.Time
	}{
		{`BEGIN:VEVENT\nRRULE:FREQ=HOURLY;INTERVAL=1;\nEND:VEVENT`, []time.Time{d(1, 1, 1), d(1, 1, 2)}}, // Karbor's trailing ";"
		{"RRULE:FREQ=WEEKLY;BYDAY=MO,FR", []time.Time{d(1, 4, 0), d(1, 7, 0), d(1, 11, 0)}},
		{"RRULE:FREQ=MONTHLY;BYMONTHDAY=15;BYHOUR=3", []time.Time{d(1, 15, 3), d(2, 15, 3)}},
		{"RRULE:FREQ=YEARLY", []time.Time{time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"RRULE:FREQ=DAILY;COUNT=2", []time.Time{d(1, 2, 0), {}}},
		{"RRULE:FREQ=DAILY;UNTIL=20300102T000000Z", []time.Time{d(1, 2, 0), {}}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			s, err := ParseCalendar(tc.rule, start)
			if err != nil {
				t.Fatal(err)
			}
			at := start
			for i, w := range tc.want {
				got := s.Next(at)
				if !got.Equal(w) {
					t.Fatalf("fire %d: got %s, want %s", i, got, w)
				}
				at = got
			}
		})
	}
}

// TestCalendarReanchor: the shortcut for fixed-period rules a long time
// after their start gives what the library gives from the start.
func TestCalendarReanchor(t *testing.T) {
	start := time.Date(2029, 3, 7, 11, 13, 17, 0, time.UTC)
	for _, rule := range []string{"RRULE:FREQ=MINUTELY;INTERVAL=7", "RRULE:FREQ=HOURLY;INTERVAL=5;BYMINUTE=0,30",
		"RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR", "RRULE:FREQ=DAILY;BYHOUR=1,13", "RRULE:FREQ=SECONDLY;INTERVAL=3600;UNTIL=20290601T000000Z"} {
		s, err := ParseCalendar(rule, start)
		if err != nil {
			t.Fatal(err)
		}
		slow := s.(rruleSchedule)
		if slow.period == 0 {
			t.Fatalf("%s: no fixed period", rule)
		}
		slow.period = 0
		for _, after := range []time.Duration{0, time.Minute, 3 * time.Hour, 20 * 24 * time.Hour, 100*24*time.Hour + 17*time.Second} {
			at := start.Add(after)
			if got, want := s.Next(at), slow.Next(at); !got.Equal(want) {
				t.Errorf("%s after %s: got %s, want %s", rule, at, got, want)
			}
		}
	}
}

func FuzzCronPattern(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 1-3 1,15 * 0-7", "0 0 30 2 *", "60 * * * *", "1/2/3 * * * *", "7/20 9-17/4 * 1-12/3 1-5"} {
		f.Add(s)
	}
	now := time.Date(2030, 1, 1, 10, 7, 30, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCron(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		n := c.Next(now)
		if !n.IsZero() && !n.After(now) {
			t.Fatalf("Next(%s) = %s, not after", now, n)
		}
		if !n.IsZero() && c.Next(n).Equal(n) {
			t.Fatal("Next is not strictly after")
		}
	})
}

func FuzzCalendarPattern(f *testing.F) {
	for _, s := range []string{`BEGIN:VEVENT\nRRULE:FREQ=MINUTELY;INTERVAL=5\nEND:VEVENT`, "RRULE:FREQ=WEEKLY;BYDAY=MO,FR;",
		"RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;BYSETPOS=1", "RRULE:FREQ=YEARLY;BYWEEKNO=53;COUNT=3", "RRULE:FREQ=DAILY;UNTIL=20300102T000000Z",
		"RRULE:FREQ=SECONDLY;INTERVAL=9223372036854775807", "RRULE:FREQ=HOURLY;BYEASTER=0"} {
		f.Add(s)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		sch, err := ParseCalendar(s, start)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		at := start.Add(-time.Second)
		for range 3 {
			n := sch.Next(at)
			if n.IsZero() {
				return
			}
			if !n.After(at) {
				t.Fatalf("Next(%s) = %s, not after", at, n)
			}
			at = n
		}
	})
}
