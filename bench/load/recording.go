package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livegate/livegate/internal/demux/fmp4"
	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/ingest/webcodecs"
	"github.com/livegate/livegate/internal/media"
)

// Kinds of publisher: a real browser recording and the way it comes in.
const (
	KindMKV             = "mkv"              // Chromium MediaRecorder, video/x-matroska;codecs=avc1,opus
	KindFMP4            = "fmp4"             // Chromium MediaRecorder, video/mp4;codecs=avc1,opus
	KindWebCodecs       = "webcodecs"        // Chromium's H.264 and Opus as WebCodecs frames, AVCC
	KindWebCodecsAnnexB = "webcodecs-annexb" // the same, H.264 in Annex B with SPS/PPS in band
	KindFirefox         = "firefox"          // Firefox MediaRecorder, video/webm;codecs=vp8,opus
)

// Kinds lists every kind, in the order the help shows them.
var allKinds = []string{KindMKV, KindFMP4, KindWebCodecs, KindWebCodecsAnnexB, KindFirefox}

// Sources are the recordings the kinds replay.
type Sources struct {
	// MKV is Chromium's H.264/Opus Matroska (also the source of the
	// WebCodecs frames and of what the seed gets for them).
	MKV string
	// FMP4 is Chromium's H.264/Opus fragmented MP4.
	FMP4 string
	// Firefox is Firefox's VP8/Opus WebM.
	Firefox string
}

// DefaultSources finds the recordings under the module root: the committed
// test media, and for the Matroska the longer Chromium 720p recording that
// `make bench` (e2e's chromiumRecording) keeps in the user cache directory,
// when there is one.
func DefaultSources(root string) Sources {
	s := Sources{
		MKV:     filepath.Join(root, "internal/demux/webm/testdata/chromium-h264-opus.mkv"),
		FMP4:    filepath.Join(root, "internal/demux/fmp4/testdata/chromium-avc1-opus.mp4"),
		Firefox: filepath.Join(root, "internal/demux/webm/testdata/firefox-vp8-opus.webm"),
	}
	if dir, err := os.UserCacheDir(); err == nil {
		// chromium-720p-60s.mkv and the like: the longest wins.
		m, _ := filepath.Glob(filepath.Join(dir, "livegate", "chromium-720p-*s.mkv"))
		var best int64
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && fi.Size() > best {
				best, s.MKV = fi.Size(), p
			}
		}
	}
	return s
}

// path is the recording a kind replays (WebCodecs: the Matroska it is
// made from).
func (s Sources) path(kind string) string {
	switch kind {
	case KindFMP4:
		return s.FMP4
	case KindFirefox:
		return s.Firefox
	}
	return s.MKV
}

// sendable is one WebSocket message (or one write to the seed's stdin) of
// a replay.
type sendable struct {
	// At is when it is due, from the start of its loop.
	At time.Duration
	// Data is what is sent. For a WebCodecs frame it begins with the
	// 14-byte header, whose timestamp is rewritten at each loop.
	Data []byte
	// TS is a WebCodecs frame's timestamp within its loop.
	TS time.Duration
	// Config marks a WebCodecs configuration, sent in the first loop only.
	Config bool
	// Video are the times (from the start of the loop) of the video frames
	// this message completes.
	Video []time.Duration
}

// Replay is a recording ready to be sent at real-time pace, over and over.
type Replay struct {
	Kind   string
	Source string // the file
	// Ingest, Mime and Codecs make the start message.
	Ingest, Mime, Codecs string
	Messages             []sendable
	// Period is a loop's length: the next loop begins this long after the
	// previous one.
	Period time.Duration
	// Restart: each loop is a new byte stream behind a restart message
	// (MediaRecorder); otherwise the frames' timestamps go on (WebCodecs).
	Restart bool
	// Transcode says what livegate encodes ("audio", or "video+audio").
	Transcode string
	// VideoFPS is the recording's frame rate (video frames per media
	// second).
	VideoFPS float64
}

// LoadReplay reads the recording of kind from src and cuts it into
// messages: for MediaRecorder, a chunk every timeslice holding the bytes
// of every frame due by then (whole fragments for MP4, which the browser
// sends only once complete); for WebCodecs, one frame per message at its
// time.
func LoadReplay(kind string, src Sources, timeslice time.Duration) (*Replay, error) {
	path := src.path(kind)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("recording for %s: %w", kind, err)
	}
	r := &Replay{Kind: kind, Source: path, Ingest: "mediarecorder", Restart: true, Transcode: "audio"}
	newDemuxer := func(r io.Reader) (media.Demuxer, error) { return webm.NewReader(r) }
	switch kind {
	case KindMKV:
		r.Mime = "video/x-matroska;codecs=avc1,opus"
	case KindFMP4:
		r.Mime = "video/mp4;codecs=avc1,opus"
		newDemuxer = func(r io.Reader) (media.Demuxer, error) { return fmp4.NewReader(r) }
	case KindFirefox:
		r.Mime = "video/webm;codecs=vp8,opus"
		r.Transcode = "video+audio"
	case KindWebCodecs, KindWebCodecsAnnexB:
		r.Ingest, r.Restart = "webcodecs", false
	default:
		return nil, fmt.Errorf("unknown kind %q (one of %s)", kind, strings.Join(allKinds, ", "))
	}
	tracks, pkts, err := demuxPositions(data, newDemuxer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Ingest == "webcodecs" {
		err = r.webCodecsMessages(tracks, pkts, kind == KindWebCodecsAnnexB)
	} else {
		err = r.chunks(data, pkts, timeslice)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// positioned is a packet and the stream offset the demuxer had read to when
// it came out: the bytes a receiver needs before it can have the packet.
type positioned struct {
	*media.Packet
	End int
}

// byteReader hands out one byte per Read, so that the bytes a demuxer has
// taken when it returns a packet are the bytes it needed (its buffered
// reader cannot read ahead).
type byteReader struct {
	data []byte
	pos  int
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.data[r.pos]
	r.pos++
	return 1, nil
}

// demuxPositions reads every packet of data with the offset it ends at.
// Packets are in stream order; their times are relative to the earliest.
func demuxPositions(data []byte, newDemuxer func(io.Reader) (media.Demuxer, error)) ([]*media.Track, []positioned, error) {
	br := &byteReader{data: data}
	d, err := newDemuxer(br)
	if err != nil {
		return nil, nil, err
	}
	tracks, err := d.Tracks()
	if err != nil {
		return nil, nil, err
	}
	var out []positioned
	for {
		p, err := d.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("after %d packets: %w", len(out), err)
		}
		out = append(out, positioned{Packet: p, End: br.pos})
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no packets")
	}
	first := out[0].DTS
	for _, p := range out {
		first = min(first, p.DTS)
	}
	for _, p := range out {
		p.PTS -= first
		p.DTS -= first
	}
	return tracks, out, nil
}

// period is how long one play of pkts lasts: up to the end of the last
// packet of the track that ends last (a packet lasting as long as the
// track's usual gap between packets).
func period(pkts []positioned) time.Duration {
	last := make(map[*media.Track][]time.Duration)
	for _, p := range pkts {
		last[p.Track] = append(last[p.Track], p.DTS)
	}
	var end time.Duration
	for _, ts := range last {
		gap := 33 * time.Millisecond
		if len(ts) > 1 {
			gaps := make([]time.Duration, 0, len(ts)-1)
			for i := 1; i < len(ts); i++ {
				gaps = append(gaps, ts[i]-ts[i-1])
			}
			sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
			gap = gaps[len(gaps)/2]
		}
		end = max(end, ts[len(ts)-1]+gap)
	}
	return end.Round(time.Millisecond)
}

// fps is the video frame rate of pkts.
func fps(pkts []positioned) float64 {
	var n int
	var first, last time.Duration
	for _, p := range pkts {
		if !p.Track.Codec.IsVideo() {
			continue
		}
		if n == 0 {
			first = p.DTS
		}
		last = p.DTS
		n++
	}
	if n < 2 || last <= first {
		return 0
	}
	return float64(n-1) / (last - first).Seconds()
}

// chunks cuts a MediaRecorder byte stream as the recorder hands it over: a
// chunk every timeslice with the bytes of every frame due by then. The
// bytes up to a packet's end are sent only once every packet ending there
// is due (an MP4 fragment goes whole, once its last frame is due).
func (r *Replay) chunks(data []byte, pkts []positioned, timeslice time.Duration) error {
	if timeslice <= 0 {
		return errors.New("timeslice must be positive")
	}
	r.VideoFPS = fps(pkts)
	type group struct {
		end   int
		due   time.Duration
		video []time.Duration
	}
	var groups []group
	for _, p := range pkts {
		if len(groups) == 0 || p.End > groups[len(groups)-1].end {
			g := group{end: p.End}
			if len(groups) > 0 {
				g.due = groups[len(groups)-1].due // never before the bytes before it
			}
			groups = append(groups, g)
		}
		g := &groups[len(groups)-1]
		g.due = max(g.due, p.DTS)
		if p.Track.Codec.IsVideo() {
			g.video = append(g.video, p.DTS)
		}
	}
	groups[len(groups)-1].end = len(data) // whatever follows the last packet
	sent := 0
	for i := 0; i < len(groups); {
		// The chunk of the timeslice in which group i becomes due.
		at := (groups[i].due + timeslice - 1) / timeslice * timeslice
		m := sendable{At: at}
		start := sent
		for ; i < len(groups) && groups[i].due <= at; i++ {
			m.Video = append(m.Video, groups[i].video...)
			sent = groups[i].end
		}
		m.Data = data[start:sent]
		r.Messages = append(r.Messages, m)
	}
	r.Period = max(period(pkts), r.Messages[len(r.Messages)-1].At+time.Millisecond)
	return nil
}

// webCodecsMessages makes the frames a WebCodecs client sends of the
// recording's H.264 and Opus: the configurations, then one frame per
// message at its time. In AVCC the video configuration is the avcC; in
// Annex B there is none and key frames carry SPS and PPS in band, as a
// VideoEncoder with avc: {format: 'annexb'} gives them.
func (r *Replay) webCodecsMessages(tracks []*media.Track, pkts []positioned, annexB bool) error {
	var video, audio *media.Track
	for _, t := range tracks {
		switch {
		case t.Codec == media.CodecH264 && video == nil:
			video = t
		case t.Codec == media.CodecOpus && audio == nil:
			audio = t
		}
	}
	if video == nil || audio == nil {
		return errors.New("WebCodecs frames are made of H.264 and Opus; the recording lacks one")
	}
	r.Codecs = video.CodecString() + ",opus"
	r.VideoFPS = fps(pkts)
	if !annexB {
		r.Messages = append(r.Messages, sendable{Config: true,
			Data: webcodecs.AppendFrame(nil, webcodecs.TypeVideoConfig, 0, 0, media.BuildAVCC(video.SPS, video.PPS))})
	}
	r.Messages = append(r.Messages, sendable{Config: true,
		Data: webcodecs.AppendFrame(nil, webcodecs.TypeAudioConfig, 0, 0, audio.OpusHead)})
	for _, p := range pkts {
		switch p.Track {
		case video:
			flags := byte(0)
			if p.Key {
				flags |= webcodecs.FlagKey
			}
			var payload []byte
			if annexB {
				flags |= webcodecs.FlagAnnexB
				au := p.AU
				if p.Key && !hasNALU(au, h264.NALUTypeSPS) {
					au = append([][]byte{video.SPS, video.PPS}, au...)
				}
				b, err := h264.AnnexB(au).Marshal()
				if err != nil {
					return fmt.Errorf("annex B: %w", err)
				}
				payload = b
			} else {
				payload = media.AppendAVCC(nil, withoutParams(p.AU))
			}
			r.Messages = append(r.Messages, sendable{At: p.DTS, TS: p.PTS, Video: []time.Duration{p.DTS},
				Data: webcodecs.AppendFrame(nil, webcodecs.TypeVideo, flags, p.PTS, payload)})
		case audio:
			r.Messages = append(r.Messages, sendable{At: p.DTS, TS: p.PTS,
				Data: webcodecs.AppendFrame(nil, webcodecs.TypeAudio, webcodecs.FlagKey, p.PTS, p.Data)})
		}
	}
	r.Period = period(pkts)
	return nil
}

// hasNALU tells whether an access unit holds a NAL unit of type typ.
func hasNALU(au [][]byte, typ h264.NALUType) bool {
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == typ {
			return true
		}
	}
	return false
}

// withoutParams leaves out SPS and PPS (an AVCC client sends them in its
// configuration, not in band).
func withoutParams(au [][]byte) [][]byte {
	out := make([][]byte, 0, len(au))
	for _, n := range au {
		if len(n) > 0 {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS, h264.NALUTypePPS:
				continue
			}
		}
		out = append(out, n)
	}
	return out
}

// seedReplay is what the seed's ffmpeg reads for kind: the kind's
// container recording (Chromium's Matroska for WebCodecs, which the seed
// cannot take), long enough for d. Where the recording is shorter, ffmpeg
// loops it into dir first (-stream_loop, streams copied: the same media,
// with timestamps that go on), since one ffmpeg cannot read a second
// container header on its input.
func seedReplay(ctx context.Context, ffmpeg, kind string, src Sources, timeslice, d time.Duration, dir string) (*Replay, error) {
	base := kind
	if kind == KindWebCodecs || kind == KindWebCodecsAnnexB {
		base = KindMKV
	}
	r, err := LoadReplay(base, src, timeslice)
	if err != nil {
		return nil, err
	}
	r.Kind = kind
	if r.Period > d {
		return r, nil
	}
	loops := int(d/r.Period) + 1
	format, ext, extra := "matroska", ".mkv", []string(nil)
	switch base {
	case KindFMP4:
		format, ext = "mp4", ".mp4"
		extra = []string{"-movflags", "+frag_keyframe+empty_moov+default_base_moof"}
	case KindFirefox:
		format, ext = "webm", ".webm"
	}
	out := filepath.Join(dir, fmt.Sprintf("seed-%s-%dx%s", base, loops+1, ext))
	if _, err := os.Stat(out); err != nil {
		args := append([]string{"-hide_banner", "-loglevel", "error", "-y", "-stream_loop", fmt.Sprint(loops), "-i", r.Source,
			"-c", "copy"}, extra...)
		args = append(args, "-f", format, out)
		cmd := exec.CommandContext(ctx, ffmpeg, args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("looping %s for the seed: %w: %s", r.Source, err, b)
		}
	}
	loopSrc := src
	switch base {
	case KindFMP4:
		loopSrc.FMP4 = out
	case KindFirefox:
		loopSrc.Firefox = out
	default:
		loopSrc.MKV = out
	}
	lr, err := LoadReplay(base, loopSrc, timeslice)
	if err != nil {
		return nil, err
	}
	lr.Kind = kind
	lr.Source = fmt.Sprintf("%s, played %d times over by ffmpeg -stream_loop (streams copied)", r.Source, loops+1)
	return lr, nil
}
