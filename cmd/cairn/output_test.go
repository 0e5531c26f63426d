package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "65536", want: 65536},
		{in: "512B", want: 512},
		{in: "64KiB", want: 64 << 10},
		{in: "64kib", want: 64 << 10},
		{in: "64K", want: 64 << 10},
		{in: "4MiB", want: 4 << 20},
		{in: "4 MiB", want: 4 << 20},
		{in: " 32MiB ", want: 32 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "2g", want: 2 << 30},
		{in: "3TiB", want: 3 << 40},
		{in: "", wantErr: "want a number"},
		{in: "MiB", wantErr: "want a number"},
		{in: "-1", wantErr: "want a number"},
		{in: "1.5MiB", wantErr: "unknown unit"},
		{in: "4MB", wantErr: "binary units"},
		{in: "4kb", wantErr: "binary units"},
		{in: "4 parsecs", wantErr: "unknown unit"},
		{in: "8388608TiB", wantErr: "too large"},
		{in: "99999999999999999999", wantErr: "too large"},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeFlag(t *testing.T) {
	if n, err := parseSizeFlag("--block-size", "4MiB"); err != nil || n != 4<<20 {
		t.Fatalf("parseSizeFlag(4MiB) = %d, %v", n, err)
	}
	for _, bad := range []string{"0", "4GiB", "x"} {
		_, err := parseSizeFlag("--block-size", bad)
		if _, ok := err.(usageError); !ok {
			t.Errorf("parseSizeFlag(%q) = %v; want a usage error", bad, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{64 << 10, "64.0 KiB"},
		{1<<20 - 1, "1.0 MiB"},
		{4 << 20, "4.0 MiB"},
		{5*(1<<20) + 300<<10, "5.3 MiB"},
		{1 << 30, "1.0 GiB"},
		{10*(1<<30) + 1<<29, "10.5 GiB"},
		{3 << 40, "3.0 TiB"},
		{5000 << 40, "5000.0 TiB"},
	}
	for _, tt := range tests {
		if got := formatSize(tt.in); got != tt.want {
			t.Errorf("formatSize(%d) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatMisc(t *testing.T) {
	if got := formatRate(123.45e6); got != "123.5 MB/s" && got != "123.4 MB/s" {
		t.Errorf("formatRate = %q", got)
	}
	if got := mbPerSec(10e6, 2*time.Second); got != 5 {
		t.Errorf("mbPerSec = %v; want 5", got)
	}
	if got := mbPerSec(10e6, 0); got != 0 {
		t.Errorf("mbPerSec over 0s = %v; want 0", got)
	}
	for d, want := range map[time.Duration]string{
		0:                               "0:00",
		59 * time.Second:                "0:59",
		83 * time.Second:                "1:23",
		3*time.Hour + 4*time.Minute + 5: "3:04:00",
		-time.Second:                    "0:00",
	} {
		if got := formatClock(d); got != want {
			t.Errorf("formatClock(%v) = %q; want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond:  "850ms",
		3240 * time.Millisecond: "3.2s",
		125 * time.Second:       "2m5s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q; want %q", d, got, want)
		}
	}
	ts := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	if got := formatTime(ts); strings.Contains(got, ".") || got != ts.Local().Format("2006-01-02T15:04:05Z07:00") {
		t.Errorf("formatTime = %q", got)
	}
}

func TestFormatProgress(t *testing.T) {
	got := formatByteProgress("backup", 1<<30, 4<<30, 10*time.Second)
	for _, want := range []string{"backup", "1.0 GiB / 4.0 GiB", " 25%", "107.4 MB/s", "ETA 0:30"} {
		if !strings.Contains(got, want) {
			t.Errorf("formatByteProgress = %q; missing %q", got, want)
		}
	}
	if got := formatByteProgress("restore", 0, 0, 0); !strings.Contains(got, "100%") || !strings.Contains(got, "ETA --:--") {
		t.Errorf("formatByteProgress for nothing = %q", got)
	}
	got = formatCountProgress("verify", 10, 40, "packs", 5*time.Second)
	for _, want := range []string{"10/40 packs", " 25%", "ETA 0:15"} {
		if !strings.Contains(got, want) {
			t.Errorf("formatCountProgress = %q; missing %q", got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\nb\r\n\nc\n"); got != "a; b; c" {
		t.Errorf("oneLine = %q", got)
	}
}
