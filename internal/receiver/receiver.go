// Package receiver is livegate's built-in RTMP server: the default
// destination, so that livegate works on a machine with nothing else
// installed, a report of what arrived (codecs, size, frame rate, bit rate,
// A/V offset, arrival delay), and watch-back: a live stream's packets for
// whoever wants to see what an RTMP player would get.
package receiver

import (
	"bytes"
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
	// MaxWatchers bounds the watchers of one stream (Watch); 0 means
	// DefaultMaxWatchers.
	MaxWatchers int

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
	tc := &timedConn{Conn: sc}
	rd := &gortmplib.Reader{Conn: tc}
	if err := rd.Initialize(); err != nil {
		return fmt.Errorf("read stream header: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})

	maxWatchers := r.MaxWatchers
	if maxWatchers <= 0 {
		maxWatchers = DefaultMaxWatchers
	}
	st := newStreamState(strings.TrimPrefix(sc.URL.Path, "/"), maxWatchers)
	for _, t := range rd.Tracks() {
		switch c := t.Codec.(type) {
		case *codecs.H264:
			v := &VideoInfo{Codec: "H264"}
			track := h264Track(c.SPS, c.PPS)
			v.Profile, v.Level, v.Width, v.Height = h264Format(c.SPS)
			st.setVideo(v)
			st.video = track
			rd.OnDataH264(t, func(pts, dts time.Duration, au [][]byte) {
				// gortmplib hands the sequence header (SPS and PPS, at
				// time 0 and whenever the publisher sends it again)
				// over as an access unit too: it is not a frame.
				if !hasPicture(au) {
					if sps, pps := paramSets(au); sps != nil && pps != nil &&
						(!bytes.Equal(sps, track.SPS) || !bytes.Equal(pps, track.PPS)) {
						track = h264Track(sps, pps)
						st.setVideoFormat(h264Format(sps))
						st.changeVideo(track)
					}
					return
				}
				key := h264.IsRandomAccess(au)
				st.onVideo(pts, dts, key, tc.current())
				if st.hasWatchers() {
					st.deliver(&media.Packet{Track: track, PTS: pts, DTS: dts, Key: key, AU: au})
				}
			})
		case *codecs.MPEG4Audio:
			a := &AudioInfo{Codec: "AAC"}
			var track *media.Track
			if c.Config != nil {
				a.SampleRate = c.Config.SampleRate
				a.Channels = int(c.Config.ChannelConfig)
				track = &media.Track{Codec: media.CodecAAC, AAC: c.Config, SampleRate: a.SampleRate, Channels: a.Channels}
			}
			st.setAudio(a)
			st.audio = track
			rd.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) {
				st.onAudio(pts, tc.current())
				if track != nil && st.hasWatchers() {
					st.deliver(&media.Packet{Track: track, PTS: pts, DTS: pts, Key: true, Data: au})
				}
			})
		default:
			st.addOther(fmt.Sprintf("%T", t.Codec))
		}
	}
	// Reported (and watchable) once its tracks are known.
	r.addStream(st)
	defer func() { st.end(sc.BytesReceived()) }()
	r.Log.Info("receiving", "path", st.Path, "remote", conn.RemoteAddr().String())

	for {
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		err := rd.Read()
		tc.consumed()
		if err != nil {
			return err
		}
	}
}

// h264Track is the watch-back track of these parameter sets.
func h264Track(sps, pps []byte) *media.Track {
	t := &media.Track{Codec: media.CodecH264, SPS: sps, PPS: pps}
	_, _, t.Width, t.Height = h264Format(sps)
	return t
}

// h264Format reads profile, level and size out of an SPS (zero values when
// it cannot be read).
func h264Format(sps []byte) (profile, level string, width, height int) {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return "", "", 0, 0
	}
	return media.H264ProfileName(&s), media.H264Level(&s), s.Width(), s.Height()
}

// paramSets finds the first SPS and PPS of an access unit.
func paramSets(au [][]byte) (sps, pps []byte) {
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			if sps == nil {
				sps = nalu
			}
		case h264.NALUTypePPS:
			if pps == nil {
				pps = nalu
			}
		}
	}
	return sps, pps
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
