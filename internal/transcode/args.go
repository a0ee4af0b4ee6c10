// Package transcode runs the ffmpeg child that does livegate's codec work.
//
// Every argument is built here from livegate's own configuration: nothing a
// client sends reaches the command line. The child reads the browser's byte
// stream on stdin and writes FLV (H.264 + AAC) on stdout; it never opens a
// file or a network address itself (protocol whitelist "pipe").
package transcode

import (
	"errors"
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
	// Video encodes the input's video track with x264; Audio encodes its
	// audio track to AAC. At least one is set. (H.264 and AAC that need no
	// change never reach ffmpeg.)
	Video bool
	Audio bool
	// Width, Height and FPS resize the video and cap its frame rate (an
	// output profile); 0 keeps the input's.
	Width, Height, FPS int
	VideoBitrate       int // bits/s
	KeyframeInterval   time.Duration
	X264Preset         string
	AudioBitrate       int // bits/s
	AudioSampleRate    int // Hz
	// KeepTimestamps keeps the input's timestamps on the output (-copyts),
	// for packets livegate merges with tracks that bypass ffmpeg.
	KeepTimestamps bool
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
	if !o.Video && !o.Audio {
		return errors.New("transcode: nothing to encode")
	}
	if o.Video {
		if !allowedPresets[o.X264Preset] {
			return fmt.Errorf("transcode: x264 preset %q is not allowed", o.X264Preset)
		}
		if o.VideoBitrate < 100_000 || o.VideoBitrate > 50_000_000 {
			return fmt.Errorf("transcode: video bitrate %d is out of range", o.VideoBitrate)
		}
		if o.KeyframeInterval < 500*time.Millisecond || o.KeyframeInterval > 10*time.Second {
			return fmt.Errorf("transcode: key-frame interval %v is out of range", o.KeyframeInterval)
		}
		if (o.Width == 0) != (o.Height == 0) {
			return errors.New("transcode: give both width and height, or neither")
		}
		if o.Width != 0 && (o.Width < 160 || o.Width > 3840 || o.Height < 90 || o.Height > 2160 || o.Width%2 != 0 || o.Height%2 != 0) {
			return fmt.Errorf("transcode: size %dx%d is out of range", o.Width, o.Height)
		}
		if o.FPS < 0 || o.FPS > 60 {
			return fmt.Errorf("transcode: frame rate %d is out of range", o.FPS)
		}
	}
	if o.Audio {
		if o.AudioBitrate < 32_000 || o.AudioBitrate > 320_000 {
			return fmt.Errorf("transcode: audio bitrate %d is out of range", o.AudioBitrate)
		}
		if o.AudioSampleRate != 44100 && o.AudioSampleRate != 48000 {
			return fmt.Errorf("transcode: audio sample rate %d is not 44100 or 48000", o.AudioSampleRate)
		}
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
		// Start quickly: livegate's Matroska carries the codec parameters
		// in its header, so there is no need to analyse seconds of media.
		// (Not -fflags nobuffer: with it ffmpeg 5.1 loses the probed
		// packets.)
		"-probesize", "65536", "-analyzeduration", "500000",
	}
	if o.KeepTimestamps {
		args = append(args, "-copyts")
	}
	args = append(args, "-f", string(o.Input), "-i", "pipe:0")
	if o.Video {
		kf := strconv.FormatFloat(o.KeyframeInterval.Seconds(), 'f', -1, 64)
		br := strconv.Itoa(o.VideoBitrate)
		args = append(args, "-map", "0:v:0")
		if o.Width != 0 {
			// Fit inside the profile's size, keep the picture's shape, pad
			// the rest: the output is exactly the size asked.
			w, h := strconv.Itoa(o.Width), strconv.Itoa(o.Height)
			args = append(args, "-vf", "scale="+w+":"+h+":force_original_aspect_ratio=decrease,pad="+w+":"+h+":(ow-iw)/2:(oh-ih)/2,setsar=1")
		}
		if o.FPS != 0 {
			args = append(args, "-r", strconv.Itoa(o.FPS))
		}
		args = append(args,
			"-c:v", "libx264", "-preset", o.X264Preset, "-tune", "zerolatency",
			"-pix_fmt", "yuv420p", "-profile:v", "high",
			"-b:v", br, "-maxrate", br, "-bufsize", strconv.Itoa(o.VideoBitrate*2),
			// A key frame every interval whatever the (variable) frame rate,
			// and none in between, so that viewers join at a steady pace.
			"-force_key_frames", "expr:gte(t,n_forced*"+kf+")", "-sc_threshold", "0",
		)
	} else {
		args = append(args, "-vn")
	}
	if o.Audio {
		// The constant-quantizer AAC coder costs half the default
		// (twoloop) here: 0.38 against 0.80 CPU s for 60 s of mono at
		// 128 kbit/s, where the difference in quality is hard to hear.
		args = append(args, "-map", "0:a:0",
			"-c:a", "aac", "-aac_coder", "fast", "-b:a", strconv.Itoa(o.AudioBitrate), "-ar", strconv.Itoa(o.AudioSampleRate))
	} else {
		args = append(args, "-an")
	}
	return append(args,
		// Hand each packet on at once rather than filling a pipe buffer.
		"-flush_packets", "1",
		"-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1",
	)
}
