package backup

import "cairn/dedup"

// Reporter receives what a backup, restore or comparison has to tell a
// person: the CLI prints notes and draws progress lines, the appliance
// logs. The zero Reporter reports nothing.
type Reporter struct {
	// Warnf is told of surprises: a whole read where an incremental was
	// expected, a snapshot that could not be removed.
	Warnf func(format string, args ...any)
	// Stage starts the progress report of one stage of the work ("verify
	// diff", "backup", "restore", "verify source"); the work calls its
	// Done when the stage ends.
	Stage func(label string) Stage
}

// Stage is the progress report of one stage.
type Stage interface {
	// Bytes reports a stage that moves bytes (backup, restore).
	Bytes(dedup.BackupProgress)
	// Blocks reports a stage that compares blocks: done of total.
	Blocks(done, total int)
	Done()
}

func (r Reporter) warnf(format string, args ...any) {
	if r.Warnf != nil {
		r.Warnf(format, args...)
	}
}

func (r Reporter) stage(label string) Stage {
	if r.Stage == nil {
		return silent{}
	}
	return r.Stage(label)
}

type silent struct{}

func (silent) Bytes(dedup.BackupProgress) {}
func (silent) Blocks(int, int)            {}
func (silent) Done()                      {}
