package appliance

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	robfig "github.com/robfig/cron/v3"
	"github.com/teambition/rrule-go"
)

// Schedule says when a trigger fires.
type Schedule interface {
	// Next returns the first fire time strictly after t, or the zero
	// time when there is none.
	Next(t time.Time) time.Time
}

var cronFields = []struct {
	name   string
	lo, hi int
}{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}

// cronParser is robfig/cron's standard five-field parser without its
// descriptors (@daily, @every): Karbor's crontab format has none.
var cronParser = robfig.NewParser(robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow)

// ParseCron parses a crontab pattern: minute hour day-of-month month
// day-of-week (0 or 7 is Sunday); when both day fields are restricted a day
// matches if either does. robfig/cron computes the fire times; the fields
// are first checked here, more strictly than robfig does (no names, no
// "?", no step larger than the field), so that a pattern another cron
// would read differently is refused with ErrInvalid rather than guessed.
func ParseCron(s string) (Schedule, error) {
	f := strings.Fields(s)
	if len(f) != 5 {
		return nil, fmt.Errorf("crontab pattern %q: want 5 fields (minute hour day month weekday), got %d: %w", s, len(f), ErrInvalid)
	}
	for i, field := range f {
		if _, err := checkCronField(field, cronFields[i].lo, cronFields[i].hi); err != nil {
			return nil, fmt.Errorf("crontab pattern %q, %s field: %w: %w", s, cronFields[i].name, ErrInvalid, err)
		}
	}
	f[4] = sundayAsZero(f[4])
	sch, err := cronParser.Parse(strings.Join(f, " "))
	if err != nil {
		return nil, fmt.Errorf("crontab pattern %q: %w: %w", s, ErrInvalid, err)
	}
	return cronSchedule{sch}, nil
}

// cronSchedule adapts robfig's schedule: its Next works in t's zone.
type cronSchedule struct{ s robfig.Schedule }

func (c cronSchedule) Next(t time.Time) time.Time { return c.s.Next(t) }

// checkCronField validates one field (numbers, *, a-b ranges, /n steps,
// lists) and returns the set of values it names.
func checkCronField(field string, lo, hi int) (uint64, error) {
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

// sundayAsZero rewrites the parts of a checked day-of-week field that
// name 7 as lists of 0-6, since robfig knows Sunday only as 0. Parts
// starting with "*" stay as they are: robfig reads a bare "*" as "any
// day", which decides how the two day fields combine.
func sundayAsZero(field string) string {
	parts := strings.Split(field, ",")
	for i, p := range parts {
		set, _ := checkCronField(p, 0, 7)
		if strings.HasPrefix(p, "*") || set&(1<<7) == 0 {
			continue
		}
		set |= 1
		var days []string
		for d := 0; d < 7; d++ {
			if set&(1<<d) != 0 {
				days = append(days, strconv.Itoa(d))
			}
		}
		parts[i] = strings.Join(days, ",")
	}
	return strings.Join(parts, ",")
}

// maxPeriod bounds a calendar rule's FREQ×INTERVAL: beyond it the
// arithmetic of fire times (and of any Duration) would overflow, and a
// trigger that fires once a century protects nothing.
const maxPeriod = 100 * 365 * 24 * time.Hour

var rruleUnits = map[string]time.Duration{"SECONDLY": time.Second, "MINUTELY": time.Minute, "HOURLY": time.Hour,
	"DAILY": 24 * time.Hour, "WEEKLY": 7 * 24 * time.Hour, "MONTHLY": 31 * 24 * time.Hour, "YEARLY": 366 * 24 * time.Hour}

// rruleSchedule is a calendar trigger: an RFC 5545 recurrence rule
// anchored at the trigger's start.
type rruleSchedule struct {
	opt rrule.ROption
	// period is the rule's FREQ×INTERVAL when it is a fixed length of
	// time (SECONDLY to WEEKLY in UTC, no COUNT); zero otherwise.
	period time.Duration
}

// Next implements Schedule. rrule-go walks every occurrence from DTSTART,
// which for a minutely rule started a year ago costs a quarter of a
// second; a fixed-period rule is re-anchored a whole number of periods
// later, which leaves its occurrences after t unchanged. (A rule that
// never matches, such as 30 February, is walked to the year 9999, about
// half a second of CPU; ParseCalendar's caller refuses it as never
// firing.)
func (s rruleSchedule) Next(t time.Time) time.Time {
	o := s.opt
	if s.period > 0 {
		if k := t.Sub(o.Dtstart) / s.period; k > 1 {
			o.Dtstart = o.Dtstart.Add((k - 1) * s.period)
		}
	}
	r, err := rrule.NewRRule(o)
	if err != nil {
		return time.Time{}
	}
	return r.After(t, false)
}

// ParseCalendar parses Karbor's "calendar" format: an iCal VEVENT (or a
// bare RRULE line) whose RRULE the rrule-go library evaluates from start
// (FREQ, INTERVAL, COUNT, UNTIL and the BY* parts). Literal "\n"
// separates lines as well as newlines, and a trailing ";" (as Karbor's
// examples write it) is allowed.
func ParseCalendar(s string, start time.Time) (Schedule, error) {
	s = strings.ReplaceAll(s, `\n`, "\n")
	var rule string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if r, ok := strings.CutPrefix(l, "RRULE:"); ok {
			if rule != "" {
				return nil, fmt.Errorf("calendar pattern has more than one RRULE line: %w", ErrInvalid)
			}
			rule = strings.TrimSuffix(r, ";")
		}
	}
	if rule == "" {
		return nil, fmt.Errorf("calendar pattern has no RRULE line: %w", ErrInvalid)
	}
	// rrule-go quietly reads a zero or negative INTERVAL as 1, and a
	// DTSTART inside the rule would move the trigger's start_time.
	var unit time.Duration
	interval := 1
	for _, kv := range strings.Split(rule, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "FREQ":
			if unit = rruleUnits[v]; unit == 0 {
				return nil, fmt.Errorf("RRULE FREQ %q unsupported: want one of SECONDLY … YEARLY: %w", v, ErrInvalid)
			}
		case "INTERVAL":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("RRULE INTERVAL %q: want a positive number: %w", v, ErrInvalid)
			}
			interval = n
		case "DTSTART":
			return nil, fmt.Errorf("RRULE part %q unsupported: set the trigger's start_time instead: %w", kv, ErrInvalid)
		}
	}
	if unit == 0 {
		return nil, fmt.Errorf("RRULE has no FREQ: %w", ErrInvalid)
	}
	if int64(interval) > int64(maxPeriod/unit) {
		return nil, fmt.Errorf("RRULE INTERVAL %d: a period longer than %d years is not supported: %w", interval, maxPeriod/(365*24*time.Hour), ErrInvalid)
	}
	opt, err := rrule.StrToROptionInLocation(rule, start.Location())
	if err != nil {
		return nil, fmt.Errorf("RRULE %q: %w: %w", rule, ErrInvalid, err)
	}
	opt.Dtstart = start
	if _, err := rrule.NewRRule(*opt); err != nil {
		return nil, fmt.Errorf("RRULE %q: %w: %w", rule, ErrInvalid, err)
	}
	sch := rruleSchedule{opt: *opt}
	if unit <= rruleUnits["WEEKLY"] && opt.Count == 0 && start.Location() == time.UTC {
		sch.period = time.Duration(interval) * unit
	}
	return sch, nil
}
