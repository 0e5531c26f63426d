package dedup

import (
	"bytes"
	"fmt"
	"testing"
)

// writeLog is a target that records every write.
type writeLog struct {
	data   []byte
	writes [][2]int // offset, length
}

func (l *writeLog) WriteAt(p []byte, off int64) (int, error) {
	copy(l.data[off:], p)
	l.writes = append(l.writes, [2]int{int(off), len(p)})
	return len(p), nil
}

// TestRestoreWriterLeavesOutZeroRuns: a sparse restore writes every
// nonzero byte and no zero run at least zeroRun long made of whole pages;
// shorter runs, partial pages and a target that is not sparse get every
// byte.
func TestRestoreWriterLeavesOutZeroRuns(t *testing.T) {
	const pg = zeroPage
	// page pattern: 'd' a page of data, '0' a zero page, 'h' a page zero
	// but for its last byte, 't' a short zero tail of half a page.
	tests := []struct {
		pattern string
		zeroRun int
		writes  [][2]int
	}{
		{"dddd", pg, [][2]int{{0, 4 * pg}}},
		{"0000", pg, nil},
		{"d0d", pg, [][2]int{{0, pg}, {2 * pg, pg}}},
		{"00dd00", pg, [][2]int{{2 * pg, 2 * pg}}},
		{"dhd", pg, [][2]int{{0, 3 * pg}}},
		{"d0t", pg, [][2]int{{0, pg}}},
		{"d00d0000d", 2 * pg, [][2]int{{0, pg}, {3 * pg, pg}, {8 * pg, pg}}},
		{"d0d00d", 2 * pg, [][2]int{{0, 3 * pg}, {5 * pg, pg}}},
		{"d0d", 0, [][2]int{{0, 3 * pg}}},
		{"000", 0, [][2]int{{0, 3 * pg}}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.pattern, tc.zeroRun), func(t *testing.T) {
			var p []byte
			for _, c := range tc.pattern {
				page := make([]byte, pg)
				switch c {
				case 'd':
					for i := range page {
						page[i] = byte(i*7 + 1)
					}
				case 'h':
					page[pg-1] = 1
				case 't':
					page = page[:pg/2]
				}
				p = append(p, page...)
			}
			const off = 3 * pg
			log := &writeLog{data: make([]byte, off+len(p))}
			if err := (restoreWriter{w: log, zeroRun: tc.zeroRun}).write(p, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(log.data[off:], p) {
				t.Error("the target does not read as the data")
			}
			want := make([][2]int, len(tc.writes))
			for i, w := range tc.writes {
				want[i] = [2]int{w[0] + off, w[1]}
			}
			if fmt.Sprint(log.writes) != fmt.Sprint(want) {
				t.Errorf("writes (offset, length) %v, want %v", log.writes, want)
			}
		})
	}
}
