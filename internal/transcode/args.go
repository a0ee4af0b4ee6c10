// Package transcode runs the ffmpeg child that does livegate's codec work.
//
// Every argument is built here from livegate's own configuration: nothing a
// client sends reaches the command line. The child reads the browser's byte
// stream on stdin and writes FLV (H.264 + AAC) on stdout; it never opens a
// file or a network address itself (protocol whitelist "pipe").
package transcode

import (
	"fmt"
	"strconv"
	"time"
)

// Input is a container livegate can hand to ffmpeg.
type Input string

// Inputs accepted on stdin.
const (
	InputMatroska Input = "matroska" // Matroska and WebM: ffmpeg's demuxer reads both
)

// Options choose what ffmpeg does. Its fields come from the operator's
// configuration and from livegate's own reading of the stream, never from
// text a client sent.
type Options struct {
	Input Input
	// CopyVideo passes H.264 through untouched; otherwise video is encoded
	// with x264.
	CopyVideo        bool
	VideoBitrate     int // bits/s, when encoding
	KeyframeInterval time.Duration
	X264Preset       string
	AudioBitrate     int // bits/s
	AudioSampleRate  int // Hz
}

var allowedPresets = map[string]bool{
	"ultrafast": true, "superfast": true, "veryfast": true, "faster": true, "fast": true, "medium": true,
}

// Validate refuses options that would put something unexpected on the
// command line. Config validation already checks these; this is the last
// guard before a process starts.
func (o Options) Validate() error {
	if o.Input != InputMatroska {
		return fmt.Errorf("transcode: input %q is not supported", o.Input)
	}
	if !o.CopyVideo {
		if !allowedPresets[o.X264Preset] {
			return fmt.Errorf("transcode: x264 preset %q is not allowed", o.X264Preset)
		}
		if o.VideoBitrate < 100_000 || o.VideoBitrate > 50_000_000 {
			return fmt.Errorf("transcode: video bitrate %d is out of range", o.VideoBitrate)
		}
		if o.KeyframeInterval < 500*time.Millisecond || o.KeyframeInterval > 10*time.Second {
			return fmt.Errorf("transcode: key-frame interval %v is out of range", o.KeyframeInterval)
		}
	}
	if o.AudioBitrate < 32_000 || o.AudioBitrate > 320_000 {
		return fmt.Errorf("transcode: audio bitrate %d is out of range", o.AudioBitrate)
	}
	if o.AudioSampleRate != 44100 && o.AudioSampleRate != 48000 {
		return fmt.Errorf("transcode: audio sample rate %d is not 44100 or 48000", o.AudioSampleRate)
	}
	return nil
}

// Args returns ffmpeg's arguments (without the program name).
func Args(o Options) []string {
	args := []string{
		"-hide_banner", "-nostats", "-loglevel", "warning",
		// stdin is the media, not a console.
		"-nostdin",
		// Read nothing but the pipes we give it.
		"-protocol_whitelist", "pipe",
		// Start quickly: Matroska carries codec parameters in its header,
		// so there is no need to analyse seconds of media. (Not -fflags
		// nobuffer: with it ffmpeg 5.1 loses the probed packets, a quarter
		// of a 4 s stream here.)
		"-probesize", "65536", "-analyzeduration", "500000",
		"-f", string(o.Input), "-i", "pipe:0",
		// First video and first audio track, each only if present.
		"-map", "0:v:0?", "-map", "0:a:0?",
	}
	if o.CopyVideo {
		args = append(args, "-c:v", "copy")
	} else {
		kf := strconv.FormatFloat(o.KeyframeInterval.Seconds(), 'f', -1, 64)
		br := strconv.Itoa(o.VideoBitrate)
		args = append(args,
			"-c:v", "libx264", "-preset", o.X264Preset, "-tune", "zerolatency",
			"-pix_fmt", "yuv420p", "-profile:v", "high",
			"-b:v", br, "-maxrate", br, "-bufsize", strconv.Itoa(o.VideoBitrate*2),
			// A key frame every interval whatever the (variable) frame rate,
			// and none in between, so that viewers join at a steady pace.
			"-force_key_frames", "expr:gte(t,n_forced*"+kf+")", "-sc_threshold", "0",
		)
	}
	args = append(args,
		"-c:a", "aac", "-b:a", strconv.Itoa(o.AudioBitrate), "-ar", strconv.Itoa(o.AudioSampleRate),
		// Hand each packet on at once rather than filling a pipe buffer.
		"-flush_packets", "1",
		"-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1",
	)
	return args
}
