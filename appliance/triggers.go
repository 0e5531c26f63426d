package appliance

import (
	"fmt"
	"maps"
	"strconv"
	"time"
)

// karborTime is the layout of Karbor's start_time/end_time properties.
const karborTime = "2006-01-02 15:04:05"

// maxWindow bounds a trigger's window in seconds: a late fire older than
// a week is no longer the protection the schedule asked for, and the
// bound keeps the window's Duration far from overflowing.
const maxWindow = 7 * 24 * 3600

var triggerProps = map[string]bool{"pattern": true, "format": true, "start_time": true, "end_time": true, "window": true}

// schedule validates a time trigger's properties and returns its schedule
// and window. Patterns firing more often than MinInterval are refused.
func (a *Appliance) schedule(t *Trigger) (Schedule, time.Duration, error) {
	if t.Type != "time" {
		return nil, 0, fmt.Errorf("trigger type %q: only \"time\" is supported: %w", t.Type, ErrInvalid)
	}
	for k := range t.Properties {
		if !triggerProps[k] {
			return nil, 0, fmt.Errorf("unknown trigger property %q: %w", k, ErrInvalid)
		}
	}
	start := t.CreatedAt
	if s := t.Properties["start_time"]; s != "" {
		v, err := time.Parse(karborTime, s)
		if err != nil {
			return nil, 0, fmt.Errorf("start_time %q: want %q: %w", s, karborTime, ErrInvalid)
		}
		start = v
	}
	var end time.Time
	if s := t.Properties["end_time"]; s != "" {
		v, err := time.Parse(karborTime, s)
		if err != nil {
			return nil, 0, fmt.Errorf("end_time %q: want %q: %w", s, karborTime, ErrInvalid)
		}
		if !v.After(start) {
			return nil, 0, fmt.Errorf("end_time %q is not after the start %s: %w", s, start.Format(karborTime), ErrInvalid)
		}
		end = v
	}
	window := 60 * time.Second
	if s := t.Properties["window"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, 0, fmt.Errorf("window %q: want a positive number of seconds: %w", s, ErrInvalid)
		}
		if n > maxWindow {
			return nil, 0, fmt.Errorf("window %q: at most %d seconds (a week): %w", s, maxWindow, ErrInvalid)
		}
		window = time.Duration(n) * time.Second
	}
	pat := t.Properties["pattern"]
	if pat == "" {
		return nil, 0, fmt.Errorf("trigger property pattern is required: %w", ErrInvalid)
	}
	var sch Schedule
	var err error
	switch f := t.Properties["format"]; f {
	case "", "crontab":
		sch, err = ParseCron(pat)
	case "calendar":
		sch, err = ParseCalendar(pat, start)
	default:
		return nil, 0, fmt.Errorf("trigger format %q: want crontab or calendar: %w", f, ErrInvalid)
	}
	if err != nil {
		return nil, 0, err
	}
	sch = bounded{s: sch, start: start, end: end}
	prev := sch.Next(start.Add(-time.Nanosecond))
	if prev.IsZero() {
		return nil, 0, fmt.Errorf("pattern %q never fires: %w", pat, ErrInvalid)
	}
	for i := 0; i < 64; i++ {
		n := sch.Next(prev)
		if n.IsZero() {
			break
		}
		if n.Sub(prev) < time.Duration(a.cfg.MinInterval) {
			return nil, 0, fmt.Errorf("pattern %q fires every %s, more often than the minimum interval %s: %w", pat, n.Sub(prev), time.Duration(a.cfg.MinInterval), ErrInvalid)
		}
		prev = n
	}
	return sch, window, nil
}

// bounded limits a schedule to [start, end]: nothing fires before the
// trigger's start_time or after its end_time (zero: no end).
type bounded struct {
	s          Schedule
	start, end time.Time
}

func (b bounded) Next(t time.Time) time.Time {
	if t.Before(b.start) {
		// Next is strictly after its argument; this lets a fire exactly
		// at start count.
		t = b.start.Add(-time.Nanosecond)
	}
	n := b.s.Next(t)
	if !b.end.IsZero() && n.After(b.end) {
		return time.Time{}
	}
	return n
}

// CreateTrigger creates a time trigger.
func (a *Appliance) CreateTrigger(project, name, typ string, props map[string]string) (*Trigger, error) {
	if name == "" {
		return nil, fmt.Errorf("trigger name is required: %w", ErrInvalid)
	}
	t := &Trigger{ID: NewUUID(), ProjectID: project, Name: name, Type: typ, Properties: props, CreatedAt: a.now().UTC()}
	if _, _, err := a.schedule(t); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.triggers[t.ID] = t
	a.save("triggers", t.ID, t)
	return cloneTrigger(t), nil
}

// UpdateTrigger changes a trigger's name and properties.
func (a *Appliance) UpdateTrigger(project, id string, name *string, props map[string]string) (*Trigger, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.triggers[id]
	if t == nil || t.ProjectID != project {
		return nil, fmt.Errorf("trigger %s: %w", id, ErrNotFound)
	}
	n := cloneTrigger(t)
	if name != nil {
		n.Name = *name
	}
	if props != nil {
		n.Properties = props
	}
	if _, _, err := a.schedule(n); err != nil {
		return nil, err
	}
	a.triggers[id] = n
	for _, op := range a.ops {
		if op.TriggerID == id {
			op.NextRun = time.Time{}
		}
	}
	a.save("triggers", id, n)
	return cloneTrigger(n), nil
}

// DeleteTrigger deletes a trigger no scheduled operation uses.
func (a *Appliance) DeleteTrigger(project, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.triggers[id]
	if t == nil || t.ProjectID != project {
		return fmt.Errorf("trigger %s: %w", id, ErrNotFound)
	}
	for _, op := range a.ops {
		if op.TriggerID == id {
			return fmt.Errorf("trigger %s is used by scheduled operation %s: %w", id, op.ID, ErrConflict)
		}
	}
	delete(a.triggers, id)
	return a.st.delete("triggers", id)
}

func cloneTrigger(t *Trigger) *Trigger {
	c := *t
	c.Properties = maps.Clone(t.Properties)
	return &c
}

// Triggers lists a project's triggers.
func (a *Appliance) Triggers(project string) []Trigger {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Trigger
	for _, t := range a.triggers {
		if inProject(t.ProjectID, project) {
			out = append(out, *cloneTrigger(t))
		}
	}
	return out
}

// GetTrigger returns one trigger.
func (a *Appliance) GetTrigger(project, id string) (*Trigger, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.triggers[id]
	if t == nil || t.ProjectID != project {
		return nil, fmt.Errorf("trigger %s: %w", id, ErrNotFound)
	}
	return cloneTrigger(t), nil
}
