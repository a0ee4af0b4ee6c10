package receiver

import (
	"math"
	"sync"
	"time"

	"github.com/livegate/livegate/internal/media"
)

// Stream is the report of one received stream (JSON at /api/v1/receiver).
type Stream struct {
	Path       string     `json:"path"`
	Active     bool       `json:"active"`
	Video      *VideoInfo `json:"video,omitempty"`
	Audio      *AudioInfo `json:"audio,omitempty"`
	Other      []string   `json:"other_tracks,omitempty"`
	Bytes      uint64     `json:"bytes"`
	FirstPTSms int64      `json:"first_pts_ms"`
	LastPTSms  int64      `json:"last_pts_ms"`
	StartedAt  time.Time  `json:"started_at"`
	UpdatedAt  time.Time  `json:"updated_at"`

	// Bitrate is what the connection received, RTMP framing included, in
	// bits per second over the last 2 s (of the stream's life, for an
	// ended stream).
	Bitrate int64 `json:"bitrate"`
	// AVOffsetMS is the first audio timestamp minus the first video
	// timestamp (of a picture), in milliseconds: positive when the sound
	// starts after the picture. Absent unless the stream has both.
	AVOffsetMS *int64 `json:"av_offset_ms,omitempty"`
	// DelayMS is the arrival delay: how much later than its timestamp
	// says the media arrives, compared with the packet of the stream that
	// arrived the earliest for its timestamp. Each packet's lag is its
	// arrival time minus its decode timestamp; the delay is the median lag
	// of the last 2 s minus the smallest lag seen. 0 means media arrives
	// as fast as it plays; a value that grows means the publisher (or the
	// network before the receiver) falls behind real time, and that many
	// milliseconds pile up between the camera and a viewer.
	DelayMS int64 `json:"delay_ms"`
}

// VideoInfo describes the video track received.
type VideoInfo struct {
	Codec     string `json:"codec"`
	Profile   string `json:"profile,omitempty"`
	Level     string `json:"level,omitempty"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Frames    uint64 `json:"frames"`
	KeyFrames uint64 `json:"key_frames"`
	// FPS is the frame rate measured from the timestamps over the whole
	// stream: (frames - 1) / (last - first picture timestamp), to 2
	// decimals; 0 before the second frame.
	FPS float64 `json:"fps"`
}

// AudioInfo describes the audio track received.
type AudioInfo struct {
	Codec      string `json:"codec"`
	SampleRate int    `json:"sample_rate"`
	Channels   int    `json:"channels"`
	Frames     uint64 `json:"frames"`
}

// streamState is one stream as it is received. The connection's goroutine
// writes it; Streams and Watch read it from others.
type streamState struct {
	mu sync.Mutex // guards the fields up to wmu
	Stream
	havePTS bool
	// Picture timestamps, for the frame rate.
	videoMin, videoMax time.Duration
	// The first picture and the first audio frame, for the A/V offset.
	firstVideo, firstAudio         time.Duration
	haveFirstVideo, haveFirstAudio bool
	lastArrival                    time.Time
	rate                           window // bytes received, by arrival
	lags                           window // arrival - DTS (ns since StartedAt), by arrival
	minLag                         int64
	haveLag                        bool

	wmu sync.Mutex // guards the watch-back fields below
	// The tracks a watcher gets: H.264 video and AAC audio, nil when the
	// stream has no such track.
	video, audio *media.Track
	watchers     map[*Watcher]struct{}
	maxWatchers  int
	ended        bool
}

func newStreamState(path string, maxWatchers int) *streamState {
	return &streamState{
		Stream:      Stream{Path: path, Active: true, StartedAt: time.Now()},
		watchers:    make(map[*Watcher]struct{}),
		maxWatchers: maxWatchers,
	}
}

func (s *streamState) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Active
}

func (s *streamState) snapshot() Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.Stream
	if s.Video != nil {
		v := *s.Video
		if v.Frames >= 2 && s.videoMax > s.videoMin {
			v.FPS = math.Round(float64(v.Frames-1)/(s.videoMax-s.videoMin).Seconds()*100) / 100
		}
		c.Video = &v
	}
	if s.Audio != nil {
		a := *s.Audio
		c.Audio = &a
	}
	c.Other = append([]string(nil), s.Other...)
	end := s.lastArrival
	if s.Active {
		end = time.Now()
	}
	c.Bitrate = int64(math.Round(s.rate.rate(end) * 8))
	if s.haveFirstVideo && s.haveFirstAudio {
		off := (s.firstAudio - s.firstVideo).Milliseconds()
		c.AVOffsetMS = &off
	}
	if m, ok := s.lags.median(); ok {
		c.DelayMS = time.Duration(m - s.minLag).Milliseconds()
	}
	return c
}

func (s *streamState) setVideo(v *VideoInfo) { s.mu.Lock(); s.Video = v; s.mu.Unlock() }
func (s *streamState) setAudio(a *AudioInfo) { s.mu.Lock(); s.Audio = a; s.mu.Unlock() }
func (s *streamState) addOther(n string)     { s.mu.Lock(); s.Other = append(s.Other, n); s.mu.Unlock() }

// setVideoFormat updates the report after new parameter sets.
func (s *streamState) setVideoFormat(profile, level string, width, height int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Video != nil {
		s.Video.Profile, s.Video.Level, s.Video.Width, s.Video.Height = profile, level, width, height
	}
}

func (s *streamState) onVideo(pts, dts time.Duration, key bool, a arrival) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Video.Frames++
	if key {
		s.Video.KeyFrames++
	}
	if !s.haveFirstVideo {
		s.firstVideo, s.videoMin, s.videoMax = pts, pts, pts
		s.haveFirstVideo = true
	}
	s.videoMin = min(s.videoMin, pts)
	s.videoMax = max(s.videoMax, pts)
	s.seen(pts, dts, a)
}

func (s *streamState) onAudio(pts time.Duration, a arrival) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Audio.Frames++
	if !s.haveFirstAudio {
		s.firstAudio = pts
		s.haveFirstAudio = true
	}
	s.seen(pts, pts, a)
}

func (s *streamState) seen(pts, dts time.Duration, a arrival) {
	ms := pts.Milliseconds()
	if !s.havePTS || ms < s.FirstPTSms {
		s.FirstPTSms = ms
	}
	if !s.havePTS || ms > s.LastPTSms {
		s.LastPTSms = ms
	}
	s.havePTS = true
	s.Bytes = a.bytes
	s.UpdatedAt = time.Now()
	s.lastArrival = a.at

	s.rate.add(a.at, int64(a.bytes))
	lag := int64(a.at.Sub(s.StartedAt) - dts)
	if !s.haveLag || lag < s.minLag {
		s.minLag = lag
		s.haveLag = true
	}
	s.lags.add(a.at, lag)
}

// end marks the stream ended and ends its watchers.
func (s *streamState) end(bytes uint64) {
	s.mu.Lock()
	s.Active = false
	s.Bytes = bytes
	s.mu.Unlock()

	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.ended = true
	for w := range s.watchers {
		w.finish(ErrStreamEnded)
	}
	clear(s.watchers)
}
