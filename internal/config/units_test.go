package config

import (
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
