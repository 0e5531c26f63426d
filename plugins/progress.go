package plugins

import (
	"cairn/backup"
	"cairn/dedup"
)

// ProgressReporter returns r with its byte stages (backup, restore) also
// told to progress, the request's Progress callback (nil: r as it is).
func ProgressReporter(r backup.Reporter, progress func(done, total int64)) backup.Reporter {
	if progress == nil {
		return r
	}
	inner := r.Stage
	r.Stage = func(label string) backup.Stage {
		var s backup.Stage
		if inner != nil {
			s = inner(label)
		}
		return progressStage{s, progress}
	}
	return r
}

type progressStage struct {
	inner    backup.Stage
	progress func(done, total int64)
}

func (p progressStage) Bytes(bp dedup.BackupProgress) {
	p.progress(bp.DoneBytes, bp.TotalBytes)
	if p.inner != nil {
		p.inner.Bytes(bp)
	}
}

func (p progressStage) Blocks(done, total int) {
	if p.inner != nil {
		p.inner.Blocks(done, total)
	}
}

func (p progressStage) Done() {
	if p.inner != nil {
		p.inner.Done()
	}
}
