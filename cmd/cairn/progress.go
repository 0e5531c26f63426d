package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"cairn/dedup"
)

// progressLine redraws one status line on a terminal with a carriage
// return. A disabled line (stderr is no terminal, --quiet or --json) draws
// nothing, so its methods are always safe to call.
type progressLine struct {
	mu      sync.Mutex
	w       io.Writer
	fd      int
	enabled bool
	label   string
	drawn   bool // a line is on the screen and must be cleared
}

// newProgress starts a progress line for label. Call done when finished.
func (a *app) newProgress(label string) *progressLine {
	p := &progressLine{w: a.stderr, label: label}
	if f, ok := a.stderr.(*os.File); ok && !a.quiet && !a.jsonOut && term.IsTerminal(int(f.Fd())) {
		p.enabled, p.fd = true, int(f.Fd())
	}
	a.line = p
	return p
}

// clearProgress removes the progress line, if any, from the screen so that
// other output can be printed.
func (a *app) clearProgress() {
	if a.line != nil {
		a.line.clear()
	}
}

// done clears the line for good.
func (a *app) doneProgress(p *progressLine) {
	p.clear()
	if a.line == p {
		a.line = nil
	}
}

// bytes shows a byte-count progress (backup, restore).
func (p *progressLine) bytes(bp dedup.BackupProgress) {
	if !p.enabled {
		return
	}
	p.draw(formatByteProgress(p.label, bp.DoneBytes, bp.TotalBytes, bp.Elapsed))
}

// count shows an item-count progress (verify).
func (p *progressLine) count(done, total int, unit string, elapsed time.Duration) {
	if !p.enabled {
		return
	}
	p.draw(formatCountProgress(p.label, done, total, unit, elapsed))
}

func (p *progressLine) draw(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, _, err := term.GetSize(p.fd); err == nil && w > 1 && len(s) >= w {
		s = s[:w-1] // a wrapped line cannot be redrawn with \r
	}
	fmt.Fprint(p.w, "\r"+s+"\x1b[K")
	p.drawn = true
}

func (p *progressLine) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// formatByteProgress renders "label  1.2 GiB / 4.0 GiB  30%  123.4 MB/s  ETA 0:23".
func formatByteProgress(label string, done, total int64, elapsed time.Duration) string {
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	eta := "--:--"
	if rate > 0 && total >= done {
		eta = formatClock(time.Duration(float64(total-done) / rate * float64(time.Second)))
	}
	return fmt.Sprintf("%s  %s / %s  %3.0f%%  %s  ETA %s",
		label, formatSize(done), formatSize(total), pct, formatRate(rate), eta)
}

// formatCountProgress renders "label  12/40 packs  30%  ETA 0:23".
func formatCountProgress(label string, done, total int, unit string, elapsed time.Duration) string {
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	eta := "--:--"
	if done > 0 && total >= done && elapsed > 0 {
		eta = formatClock(time.Duration(float64(elapsed) * float64(total-done) / float64(done)))
	}
	return fmt.Sprintf("%s  %d/%d %s  %3.0f%%  ETA %s", label, done, total, unit, pct, eta)
}

// formatClock renders a duration as m:ss or h:mm:ss.
func formatClock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
