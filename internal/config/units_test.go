package config

import (
	"strings"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	for _, ca := range []struct {
		got, want string
	}{
		{formatSize(4 << 20), "4MiB"},
		{formatSize(512 << 10), "512KiB"},
		{formatSize(1536 << 10), "1536KiB"},
		{formatSize(1000), "1000 bytes"},
		{formatSize(0), "0 bytes"},
		{formatSize(-1024), "-1KiB"},
		{formatBitrate(50_000_000), "50M"},
		{formatBitrate(2_500_000), "2500k"},
		{formatBitrate(128_000), "128k"},
		{formatBitrate(1234), "1234"},
		{formatBitrate(0), "0"},
		{formatDuration(5 * time.Minute), "5m"},
		{formatDuration(5*time.Minute + time.Second), "5m1s"},
		{formatDuration(2 * time.Hour), "2h"},
		{formatDuration(2*time.Hour + 30*time.Minute), "2h30m"},
		{formatDuration(500 * time.Millisecond), "500ms"},
		{formatDuration(15 * time.Second), "15s"},
		{formatDuration(0), "0s"},
	} {
		if ca.got != ca.want {
			t.Errorf("got %q, want %q", ca.got, ca.want)
		}
	}
}

func TestParseBitrate(t *testing.T) {
	for _, ca := range []struct {
		in   string
		want int
		err  string
	}{
		{"4M", 4_000_000, ""},
		{"2.5M", 2_500_000, ""},
		{"128k", 128_000, ""},
		{"1000", 1000, ""},
		{"1G", 1_000_000_000, ""},
		{"4Mbps", 0, `"4Mbps" is not a bitrate; use bits per second or a rate such as 128k, 2500k or 2.5M`},
		{"", 0, `"" is not a bitrate`},
		{"1.5", 0, `"1.5" is not a whole number of bits per second`},
		{"3G", 0, `"3G" is too large`},
	} {
		got, err := ParseBitrate(ca.in)
		switch {
		case ca.err == "" && (err != nil || got != ca.want):
			t.Errorf("ParseBitrate(%q) = %d, %v; want %d", ca.in, got, err, ca.want)
		case ca.err != "" && (err == nil || !strings.HasPrefix(err.Error(), ca.err)):
			t.Errorf("ParseBitrate(%q) = %d, %v; want the error %q", ca.in, got, err, ca.err)
		}
	}
}
