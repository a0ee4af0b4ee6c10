// Package receiver is livegate's built-in RTMP server: the default
// destination, so that livegate works on a machine with nothing else
// installed, and a report of what arrived (codecs, size, frames, timing).
package receiver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livegate/livegate/internal/media"
)

const (
	handshakeTimeout = 10 * time.Second
	readTimeout      = 10 * time.Second
	maxConns         = 64
	keptStreams      = 32 // ended streams are kept for the report, up to this many
)

// Receiver accepts RTMP publishes and records what arrived.
type Receiver struct {
	// Listen is the TCP address, for example 127.0.0.1:1935.
	Listen string
	Log    *slog.Logger

	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	streams []*streamState
	closed  bool
}

// Initialize starts listening. Close stops it.
func (r *Receiver) Initialize() error {
	ln, err := net.Listen("tcp", r.Listen)
	if err != nil {
		return fmt.Errorf("built-in receiver: listen on %s (set receiver.listen in the config, or disable the receiver): %w", r.Listen, err)
	}
	r.ln = ln
	r.conns = make(map[net.Conn]struct{})
	r.wg.Add(1)
	go r.acceptLoop()
	r.Log.Info("built-in RTMP receiver listening", "address", ln.Addr().String())
	return nil
}

// Addr is the address it listens on (useful when the port was 0).
func (r *Receiver) Addr() *net.TCPAddr { return r.ln.Addr().(*net.TCPAddr) }

// URL is where a publisher sends the stream named key.
func (r *Receiver) URL(key string) string {
	return fmt.Sprintf("rtmp://%s/live/%s", r.Addr().String(), key)
}

// Close stops accepting, ends every connection and waits for them.
func (r *Receiver) Close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	_ = r.ln.Close()
	r.wg.Wait()
}

func (r *Receiver) acceptLoop() {
	defer r.wg.Done()
	for {
		conn, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed || len(r.conns) >= maxConns {
			r.mu.Unlock()
			_ = conn.Close()
			continue
		}
		r.conns[conn] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := r.handle(conn)
			r.mu.Lock()
			delete(r.conns, conn)
			r.mu.Unlock()
			_ = conn.Close()
			r.Log.Debug("receiver connection closed", "remote", conn.RemoteAddr().String(), "reason", err)
		}()
	}
}

func (r *Receiver) handle(conn net.Conn) error {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	sc := &gortmplib.ServerConn{RW: conn}
	if err := sc.Initialize(); err != nil {
		return err
	}
	if err := sc.Accept(); err != nil {
		return err
	}
	if !sc.Publish {
		return errors.New("playing is not offered by the built-in receiver")
	}
	rd := &gortmplib.Reader{Conn: sc}
	if err := rd.Initialize(); err != nil {
		return fmt.Errorf("read stream header: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})

	st := &streamState{Stream: Stream{
		Path:      strings.TrimPrefix(sc.URL.Path, "/"),
		Active:    true,
		StartedAt: time.Now(),
	}}
	r.addStream(st)
	defer func() {
		st.mu.Lock()
		st.Active = false
		st.Bytes = sc.BytesReceived()
		st.mu.Unlock()
	}()
	r.Log.Info("receiving", "path", st.Path, "remote", conn.RemoteAddr().String())

	for _, t := range rd.Tracks() {
		switch c := t.Codec.(type) {
		case *codecs.H264:
			v := &VideoInfo{Codec: "H264"}
			var sps h264.SPS
			if err := sps.Unmarshal(c.SPS); err == nil {
				v.Profile = media.H264ProfileName(&sps)
				v.Level = media.H264Level(&sps)
				v.Width, v.Height = sps.Width(), sps.Height()
			}
			st.setVideo(v)
			rd.OnDataH264(t, func(pts, _ time.Duration, au [][]byte) {
				// gortmplib hands the sequence header (SPS and PPS, at
				// time 0) over as an access unit too: it is not a frame.
				if !hasPicture(au) {
					return
				}
				st.onVideo(pts, h264.IsRandomAccess(au), sc.BytesReceived())
			})
		case *codecs.MPEG4Audio:
			a := &AudioInfo{Codec: "AAC"}
			if c.Config != nil {
				a.SampleRate = c.Config.SampleRate
				a.Channels = int(c.Config.ChannelConfig)
			}
			st.setAudio(a)
			rd.OnDataMPEG4Audio(t, func(pts time.Duration, _ []byte) {
				st.onAudio(pts, sc.BytesReceived())
			})
		default:
			st.addOther(fmt.Sprintf("%T", t.Codec))
		}
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		if err := rd.Read(); err != nil {
			return err
		}
	}
}

// hasPicture tells whether an H.264 access unit holds a coded slice.
func hasPicture(au [][]byte) bool {
	for _, nalu := range au {
		if len(nalu) > 0 {
			if typ := h264.NALUType(nalu[0] & 0x1f); typ >= h264.NALUTypeNonIDR && typ <= h264.NALUTypeIDR {
				return true
			}
		}
	}
	return false
}

func (r *Receiver) addStream(st *streamState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams = append(r.streams, st)
	// Forget the oldest ended streams beyond the cap.
	for len(r.streams) > keptStreams {
		i := -1
		for j, s := range r.streams {
			if !s.active() {
				i = j
				break
			}
		}
		if i < 0 {
			break
		}
		r.streams = append(r.streams[:i], r.streams[i+1:]...)
	}
}

// Streams reports every stream received, newest first.
func (r *Receiver) Streams() []Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Stream, 0, len(r.streams))
	for _, s := range r.streams {
		out = append(out, s.snapshot())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	return out
}

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
}

// AudioInfo describes the audio track received.
type AudioInfo struct {
	Codec      string `json:"codec"`
	SampleRate int    `json:"sample_rate"`
	Channels   int    `json:"channels"`
	Frames     uint64 `json:"frames"`
}

type streamState struct {
	mu      sync.Mutex
	havePTS bool
	Stream
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
		c.Video = &v
	}
	if s.Audio != nil {
		a := *s.Audio
		c.Audio = &a
	}
	c.Other = append([]string(nil), s.Other...)
	return c
}

func (s *streamState) setVideo(v *VideoInfo) { s.mu.Lock(); s.Video = v; s.mu.Unlock() }
func (s *streamState) setAudio(a *AudioInfo) { s.mu.Lock(); s.Audio = a; s.mu.Unlock() }
func (s *streamState) addOther(n string)     { s.mu.Lock(); s.Other = append(s.Other, n); s.mu.Unlock() }

func (s *streamState) onVideo(pts time.Duration, key bool, bytes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Video.Frames++
	if key {
		s.Video.KeyFrames++
	}
	s.seen(pts, bytes)
}

func (s *streamState) onAudio(pts time.Duration, bytes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Audio.Frames++
	s.seen(pts, bytes)
}

func (s *streamState) seen(pts time.Duration, bytes uint64) {
	ms := pts.Milliseconds()
	if !s.havePTS || ms < s.FirstPTSms {
		s.FirstPTSms = ms
	}
	if !s.havePTS || ms > s.LastPTSms {
		s.LastPTSms = ms
	}
	s.havePTS = true
	s.Bytes = bytes
	s.UpdatedAt = time.Now()
}
