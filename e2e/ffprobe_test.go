package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probeResult is what ffprobe reports about a media file.
type probeResult struct {
	Format  probeFormat
	Streams []stream
}

type probeFormat struct {
	Name     string  // format_name, e.g. "flv" or "matroska,webm"
	Duration float64 // seconds; 0 when ffprobe does not know
}

// stream is one stream of a probed file. Numbers ffprobe prints as strings
// are parsed; a missing value is 0.
type stream struct {
	Index        int
	CodecType    string // "video", "audio"
	CodecName    string // "h264", "aac", "opus", "vp8"
	Profile      string // "Constrained Baseline", "LC"
	Level        int    // 31 for H.264 level 3.1
	Width        int
	Height       int
	AvgFrameRate string // "30/1", "1000/33" (FLV has millisecond timestamps)
	NbReadFrames int    // frames decoded by -count_frames
	StartTime    float64
	Duration     float64
}

// FPS is AvgFrameRate as a number, 0 when unknown.
func (s stream) FPS() float64 {
	return parseRate(s.AvgFrameRate)
}

func parseRate(r string) float64 {
	num, den, ok := strings.Cut(r, "/")
	if !ok {
		f, _ := strconv.ParseFloat(r, 64)
		return f
	}
	n, err1 := strconv.ParseFloat(num, 64)
	d, err2 := strconv.ParseFloat(den, 64)
	if err1 != nil || err2 != nil || d == 0 {
		return 0
	}
	return n / d
}

// Video returns the first video stream, or nil.
func (r probeResult) Video() *stream { return r.first("video") }

// Audio returns the first audio stream, or nil.
func (r probeResult) Audio() *stream { return r.first("audio") }

func (r probeResult) first(codecType string) *stream {
	for i := range r.Streams {
		if r.Streams[i].CodecType == codecType {
			return &r.Streams[i]
		}
	}
	return nil
}

// ffprobeJSON is the part of `ffprobe -of json` we read.
type ffprobeJSON struct {
	Streams []struct {
		Index        int    `json:"index"`
		CodecType    string `json:"codec_type"`
		CodecName    string `json:"codec_name"`
		Profile      string `json:"profile"`
		Level        int    `json:"level"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
		NbReadFrames string `json:"nb_read_frames"`
		StartTime    string `json:"start_time"`
		Duration     string `json:"duration"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
}

func atof(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
func atoi(s string) int     { i, _ := strconv.Atoi(s); return i }

// probe runs ffprobe (with -count_frames, so it decodes the whole file) and
// fails the test if ffprobe fails.
func probe(t testing.TB, path string) probeResult {
	t.Helper()
	bin := requireBinary(t, "ffprobe", "ffmpeg")
	out, stderr, err := runTool(2*time.Minute, bin, "-v", "error", "-count_frames",
		"-show_streams", "-show_format", "-of", "json", path)
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr)
	}
	r, err := parseProbe(out)
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	return r
}

func parseProbe(out []byte) (probeResult, error) {
	var raw ffprobeJSON
	if err := json.Unmarshal(out, &raw); err != nil {
		return probeResult{}, err
	}
	r := probeResult{Format: probeFormat{Name: raw.Format.FormatName, Duration: atof(raw.Format.Duration)}}
	for _, s := range raw.Streams {
		r.Streams = append(r.Streams, stream{
			Index:        s.Index,
			CodecType:    s.CodecType,
			CodecName:    s.CodecName,
			Profile:      s.Profile,
			Level:        s.Level,
			Width:        s.Width,
			Height:       s.Height,
			AvgFrameRate: s.AvgFrameRate,
			NbReadFrames: atoi(s.NbReadFrames),
			StartTime:    atof(s.StartTime),
			Duration:     atof(s.Duration),
		})
	}
	return r, nil
}

// decodeErrors decodes the whole file with ffmpeg and returns what it
// printed at level error; "" means the file decoded cleanly.
func decodeErrors(t testing.TB, path string) string {
	t.Helper()
	bin := requireBinary(t, "ffmpeg", "ffmpeg")
	// Keep each frame's own timestamp (passthrough, demuxer time base): by
	// default the null output re-times frames to the frame rate ffmpeg
	// guesses, and a camera that starts slowly (20 fps for a moment) then
	// makes it complain about its own output, not about the stream.
	_, stderr, err := runTool(2*time.Minute, bin, "-nostdin", "-v", "error", "-i", path,
		"-fps_mode", "passthrough", "-enc_time_base", "-1", "-f", "null", "-")
	s := strings.TrimSpace(string(stderr))
	if err != nil && s == "" {
		s = "ffmpeg: " + err.Error()
	}
	return s
}

// packetTimes returns the DTS (in seconds) of every packet of the first
// stream of a kind ("v" or "a"), in file order.
func packetTimes(t testing.TB, path, kind string) []float64 {
	t.Helper()
	var ts []float64
	for _, p := range packetList(t, path, kind) {
		ts = append(ts, p.DTS)
	}
	return ts
}

// packetInfo is one packet as ffprobe lists it.
type packetInfo struct {
	DTS float64 // seconds
	Key bool
}

// packetList returns every packet of the first stream of a kind ("v" or
// "a"), in file order.
func packetList(t testing.TB, path, kind string) []packetInfo {
	t.Helper()
	bin := requireBinary(t, "ffprobe", "ffmpeg")
	out, stderr, err := runTool(time.Minute, bin, "-v", "error", "-select_streams", kind+":0",
		"-show_entries", "packet=dts_time,flags", "-of", "csv=p=0", path)
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v\n%s", path, err, stderr)
	}
	var ps []packetInfo
	for _, l := range strings.Fields(string(out)) {
		dts, flags, _ := strings.Cut(l, ",")
		f, err := strconv.ParseFloat(dts, 64)
		if err == nil {
			ps = append(ps, packetInfo{DTS: f, Key: strings.HasPrefix(flags, "K")})
		}
	}
	return ps
}

// largestGap is the longest time between two packets in a row, and where
// it began (seconds).
func largestGap(ps []packetInfo) (gap, at float64) {
	for i := 1; i < len(ps); i++ {
		if d := ps[i].DTS - ps[i-1].DTS; d > gap {
			gap, at = d, ps[i-1].DTS
		}
	}
	return gap, at
}

// h264SPS returns the first SPS NAL unit (header byte 0x67 and all, no start
// code) of the first video stream of path. Compare it with the SPS in the
// avcC the browser sent to prove the video passed through untouched. It
// fails the test when there is none.
func h264SPS(t testing.TB, path string) []byte {
	t.Helper()
	bin := requireBinary(t, "ffmpeg", "ffmpeg")
	// h264_mp4toannexb writes the SPS/PPS from the container's avcC in
	// front of the first key frame.
	out, stderr, err := runTool(time.Minute, bin, "-nostdin", "-v", "error", "-i", path,
		"-map", "0:v:0", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-frames:v", "1", "-f", "h264", "-")
	if err != nil {
		t.Fatalf("h264SPS %s: %v\n%s", path, err, stderr)
	}
	for _, nal := range splitAnnexB(out) {
		if len(nal) > 0 && nal[0]&0x1f == 7 {
			return nal
		}
	}
	t.Fatalf("h264SPS %s: no SPS in the first %d bytes of Annex-B output", path, len(out))
	return nil
}

// splitAnnexB splits an H.264 Annex-B byte stream into NAL units, without
// start codes. Zero bytes before a start code (trailing_zero_8bits, or the
// first byte of a 4-byte start code) are dropped; NAL units never end in a
// zero byte (rbsp_trailing_bits holds a 1).
func splitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1 // start of the current NAL, after its start code
	for i := 0; i+2 < len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				nals = appendNAL(nals, b[start:i])
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 {
		nals = appendNAL(nals, b[start:])
	}
	return nals
}

func appendNAL(nals [][]byte, n []byte) [][]byte {
	n = bytes.TrimRight(n, "\x00")
	if len(n) == 0 {
		return nals
	}
	return append(nals, n)
}

// runTool runs a short-lived tool (ffprobe, ffmpeg) with a deadline and
// returns stdout and stderr.
func runTool(timeout time.Duration, bin string, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return o.Bytes(), e.Bytes(), err
}

// ffmpegPublisher is an ffmpeg publishing a test pattern over RTMP.
type ffmpegPublisher struct {
	URL string
	p   *proc
	d   time.Duration
	out syncBuffer
}

// startFFmpegPublish starts publishing d of a 1280x720@30 test pattern
// (testsrc2) with a 1 kHz tone, as H.264 (x264 ultrafast, zerolatency, GOP
// 60 = 2 s) and AAC in FLV, to an RTMP url in real time (-re). The test's
// cleanup kills it if it still runs.
func startFFmpegPublish(t testing.TB, url string, d time.Duration) *ffmpegPublisher {
	t.Helper()
	bin := requireBinary(t, "ffmpeg", "ffmpeg")
	f := &ffmpegPublisher{URL: url, d: d}
	cmd := exec.Command(bin, "-nostdin", "-v", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=1000",
		"-t", strconv.FormatFloat(d.Seconds(), 'f', 3, 64),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
		"-c:a", "aac", "-f", "flv", url)
	cmd.Stdout, cmd.Stderr = &f.out, &f.out
	p, err := startProc("ffmpeg", cmd)
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	t.Cleanup(func() {
		if err := p.kill(); err != nil {
			t.Errorf("ffmpeg: %v", err)
		}
	})
	return f
}

// Wait waits until ffmpeg ends (at most d + 30 s, then it is killed) and
// returns an error with ffmpeg's output if it did not exit with 0.
func (f *ffmpegPublisher) Wait() error {
	if !f.p.wait(f.d + 30*time.Second) {
		_ = f.p.kill()
		return fmt.Errorf("ffmpeg publishing to %s did not finish within %v\n%s", f.URL, f.d+30*time.Second, f.out.String())
	}
	_ = f.p.kill() // nothing should be left, but make sure
	if code := f.p.exitCode(); code != 0 {
		return fmt.Errorf("ffmpeg publishing to %s: exit code %d\n%s", f.URL, code, f.out.String())
	}
	return nil
}

// Output is what ffmpeg printed (at level error).
func (f *ffmpegPublisher) Output() string { return f.out.String() }

// ffmpegPublish publishes d of the test pattern (see startFFmpegPublish) and
// returns when ffmpeg has finished; it fails the test if ffmpeg fails.
func ffmpegPublish(t testing.TB, url string, d time.Duration) {
	t.Helper()
	if err := startFFmpegPublish(t, url, d).Wait(); err != nil {
		t.Fatal(err)
	}
}
