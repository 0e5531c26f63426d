package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// formatSize renders a byte count for people: "512 B", "1.5 KiB", "4.0 MiB",
// "1.2 GiB", "3.0 TiB".
func formatSize(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, suffix := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		// Round first so that 1048575 B prints "1.0 MiB", not "1024.0 KiB".
		if r := float64(int64(v*10+0.5)) / 10; (r < unit && r > -unit) || suffix == "TiB" {
			return fmt.Sprintf("%.1f %s", v, suffix)
		}
	}
	panic("unreachable")
}

// formatRate renders bytes per second in decimal megabytes: "123.4 MB/s".
func formatRate(bytesPerSec float64) string {
	return fmt.Sprintf("%.1f MB/s", bytesPerSec/1e6)
}

// mbPerSec is bytes over d in decimal megabytes per second (0 for d <= 0).
func mbPerSec(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// formatTime renders a timestamp in local time, RFC 3339 without fractional
// seconds.
func formatTime(t time.Time) string {
	return t.Local().Format(time.RFC3339)
}

// formatDuration renders an elapsed time: "850ms", "3.2s", "2m5s".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// formatRatio renders a ratio such as a deduplication factor: "3.21x".
func formatRatio(r float64) string {
	return fmt.Sprintf("%.2fx", r)
}

// writeJSON prints v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// kv prints aligned "key  value" lines, for summaries.
type kv struct {
	rows [][2]string
}

func (k *kv) add(key string, format string, args ...any) {
	k.rows = append(k.rows, [2]string{key, fmt.Sprintf(format, args...)})
}

func (k *kv) write(w io.Writer) error {
	width := 0
	for _, r := range k.rows {
		width = max(width, len(r[0]))
	}
	var b strings.Builder
	for _, r := range k.rows {
		fmt.Fprintf(&b, "%-*s  %s\n", width, r[0], r[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// newTable returns a writer that aligns tab-separated columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// yesNo renders a boolean for people.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
