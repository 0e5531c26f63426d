package appliance

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule says when a trigger fires.
type Schedule interface {
	// Next returns the first fire time strictly after t.
	Next(t time.Time) time.Time
}

// cron is a parsed 5-field crontab pattern: minute hour day-of-month
// month day-of-week (0 or 7 is Sunday). Like cron, when both day fields
// are restricted a day matches if either does.
type cron struct {
	min, hour, dom, month, dow uint64
	domStar, dowStar           bool
}

var cronFields = []struct {
	name   string
	lo, hi int
}{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}

// ParseCron parses a crontab pattern strictly: exactly five fields of
// numbers, *, ranges a-b, steps /n and lists; anything else is ErrInvalid.
func ParseCron(s string) (Schedule, error) {
	f := strings.Fields(s)
	if len(f) != 5 {
		return nil, fmt.Errorf("crontab pattern %q: want 5 fields (minute hour day month weekday), got %d: %w", s, len(f), ErrInvalid)
	}
	var sets [5]uint64
	for i, field := range f {
		set, err := parseCronField(field, cronFields[i].lo, cronFields[i].hi)
		if err != nil {
			return nil, fmt.Errorf("crontab pattern %q, %s field: %w: %w", s, cronFields[i].name, ErrInvalid, err)
		}
		sets[i] = set
	}
	if sets[4]&(1<<7) != 0 {
		sets[4] |= 1
	}
	return &cron{min: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4],
		domStar: f[2] == "*", dowStar: f[4] == "*"}, nil
}

func parseCronField(field string, lo, hi int) (uint64, error) {
	var set uint64
	for _, part := range strings.Split(field, ",") {
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n <= 0 || n > hi {
				return 0, fmt.Errorf("bad step %q", stepS)
			}
			step = n
		}
		a, b := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			as, bs, _ := strings.Cut(rng, "-")
			var err1, err2 error
			a, err1 = strconv.Atoi(as)
			b, err2 = strconv.Atoi(bs)
			if err1 != nil || err2 != nil || a > b {
				return 0, fmt.Errorf("bad range %q", rng)
			}
		default:
			n, err := strconv.Atoi(rng)
			if err != nil {
				return 0, fmt.Errorf("bad value %q", rng)
			}
			a, b = n, n
			if hasStep {
				b = hi
			}
		}
		if a < lo || b > hi {
			return 0, fmt.Errorf("%q out of range %d-%d", rng, lo, hi)
		}
		for v := a; v <= b; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func (c *cron) dayMatches(t time.Time) bool {
	d := c.dom&(1<<uint(t.Day())) != 0
	w := c.dow&(1<<uint(t.Weekday())) != 0
	switch {
	case c.domStar && c.dowStar:
		return true
	case c.domStar:
		return w
	case c.dowStar:
		return d
	}
	return d || w
}

// Next implements Schedule. A pattern that never matches (30 February)
// returns the zero time.
func (c *cron) Next(t time.Time) time.Time {
	t = t.Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(5, 0, 0)
	for t.Before(end) {
		switch {
		case c.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, t.Location())
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, t.Location())
		case c.hour&(1<<uint(t.Hour())) == 0:
			// Not Truncate: it works in absolute time and would land on
			// :30 in zones with half-hour offsets.
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, t.Location())
		case c.min&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

// every is a calendar RRULE schedule: start + k*period.
type every struct {
	start  time.Time
	period time.Duration
}

func (e every) Next(t time.Time) time.Time {
	if t.Before(e.start) {
		return e.start
	}
	k := t.Sub(e.start)/e.period + 1
	return e.start.Add(k * e.period)
}

// ParseCalendar parses Karbor's "calendar" format: an iCal VEVENT (or a
// bare RRULE line) with FREQ=SECONDLY|MINUTELY|HOURLY|DAILY|WEEKLY and an
// optional INTERVAL. Literal "\n" separates lines as well as newlines.
func ParseCalendar(s string, start time.Time) (Schedule, error) {
	s = strings.ReplaceAll(s, `\n`, "\n")
	var rule string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if r, ok := strings.CutPrefix(l, "RRULE:"); ok {
			rule = r
		}
	}
	if rule == "" {
		return nil, fmt.Errorf("calendar pattern has no RRULE line: %w", ErrInvalid)
	}
	units := map[string]time.Duration{"SECONDLY": time.Second, "MINUTELY": time.Minute, "HOURLY": time.Hour, "DAILY": 24 * time.Hour, "WEEKLY": 7 * 24 * time.Hour}
	var unit time.Duration
	n := 1
	for _, kv := range strings.Split(rule, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "FREQ":
			if unit = units[v]; unit == 0 {
				return nil, fmt.Errorf("RRULE FREQ %q unsupported: %w", v, ErrInvalid)
			}
		case "INTERVAL":
			var err error
			if n, err = strconv.Atoi(v); err != nil || n <= 0 {
				return nil, fmt.Errorf("RRULE INTERVAL %q: %w", v, ErrInvalid)
			}
		default:
			return nil, fmt.Errorf("RRULE part %q unsupported: %w", kv, ErrInvalid)
		}
	}
	if unit == 0 {
		return nil, fmt.Errorf("RRULE has no FREQ: %w", ErrInvalid)
	}
	return every{start: start, period: time.Duration(n) * unit}, nil
}
