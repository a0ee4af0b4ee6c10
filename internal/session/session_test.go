package session

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/publish"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/testutil"
	"github.com/livegate/livegate/internal/transcode"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testFile is what Chromium's MediaRecorder makes: Matroska with H.264
// 640x360 at 30 fps and Opus, 4 s.
const testFile = "../ingest/mediarecorder/testdata/h264.mkv"

const secretKey = "SECRETKEY123"

// passthrough is the encoder setting of a Chromium broadcast: only its
// Opus audio is encoded, its H.264 passes through.
var passthrough = transcode.Options{
	AudioBitrate:    128000,
	AudioSampleRate: 48000,
}

// events records what OnEvent reported.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) on(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) get() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.all...)
}

// newSession starts a session; it is closed at the end of the test.
func newSession(t *testing.T, dests []Destination, m *metrics.Metrics) (*Session, *events) {
	t.Helper()
	testutil.NeedTool(t, "ffmpeg")
	ev := &events{}
	s := &Session{
		ID:           "test",
		Log:          testutil.Logger(),
		FFmpegPath:   "ffmpeg",
		Encode:       passthrough,
		NewDemuxer:   newWebM,
		Destinations: dests,
		Metrics:      m,
		OnEvent:      ev.on,
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, ev
}

// writeChunks writes data cut at random places, as MediaRecorder does.
func writeChunks(s *Session, data []byte) error {
	rng := rand.New(rand.NewPCG(1, 2))
	for len(data) > 0 {
		n := min(len(data), 1+rng.IntN(40_000))
		if err := s.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func TestBroadcastToReceiver(t *testing.T) {
	data, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	m := metrics.New()
	s, ev := newSession(t, []Destination{{Name: "local", URL: testutil.RTMPURL(t, rcv.Addr().String(), "test")}}, m)

	if err := writeChunks(s, data); err != nil {
		t.Fatal(err)
	}
	s.Finish()
	if err := s.Err(); err != nil {
		t.Fatalf("Err after a clean Finish: %v", err)
	}

	st := s.Stats()
	if st.BytesIn != uint64(len(data)) {
		t.Errorf("BytesIn %d, want the file size %d", st.BytesIn, len(data))
	}
	if st.FirstPacket.IsZero() {
		t.Error("FirstPacket is not set")
	}
	if len(st.Destinations) != 1 || st.Destinations[0].State != publish.StateEnded || st.Destinations[0].BytesOut == 0 {
		t.Errorf("destination stats %+v, want ended with bytes out", st.Destinations)
	}
	var cpu time.Duration
	for _, e := range s.Encoders() {
		cpu += e.CPUTime()
	}
	if n := len(s.Encoders()); n != 1 || cpu <= 0 {
		t.Errorf("%d encoders used %v CPU; want one (audio; the H.264 passes through) with CPU > 0", n, cpu)
	}
	if tr := s.Tracks(); len(tr) != 2 {
		t.Errorf("tracks %v, want H264 and AAC", tr)
	}
	var states []string
	for _, e := range ev.get() {
		states = append(states, string(e.State))
	}
	if got := strings.Join(states, ","); got != "connecting,live,ended" {
		t.Errorf("events %s, want connecting,live,ended", got)
	}
	if got := testutil.MetricValue(t, m.Handler(), "livegate_ingest_bytes_total"); got != strconv.Itoa(len(data)) {
		t.Errorf("livegate_ingest_bytes_total %s, want %d", got, len(data))
	}
	if got := testutil.MetricValue(t, m.Handler(), `livegate_destination_live{destination="local"}`); got != "0" {
		t.Errorf("livegate_destination_live after the end %s, want 0", got)
	}

	testutil.WaitFor(t, "the stream ends at the receiver", 5*time.Second, func() bool {
		r := rcv.Streams()
		return len(r) == 1 && !r[0].Active
	})
	r := rcv.Streams()[0]
	// 4 s at 30 fps.
	if v := r.Video; v == nil || v.Codec != "H264" || v.Width != 640 || v.Height != 360 || v.Frames < 115 || v.Frames > 121 || v.KeyFrames == 0 {
		t.Errorf("video %+v, want H264 640x360, about 120 frames", v)
	}
	if a := r.Audio; a == nil || a.Codec != "AAC" || a.SampleRate != 48000 || a.Frames < 170 {
		t.Errorf("audio %+v, want AAC 48000 Hz, about 187 frames", a)
	}
	if r.LastPTSms-r.FirstPTSms < 3800 {
		t.Errorf("received %d..%d ms, want about 4 s", r.FirstPTSms, r.LastPTSms)
	}
}

func TestUnreachableDestinationEndsTheSession(t *testing.T) {
	data, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	s, ev := newSession(t, []Destination{{Name: "gone", URL: testutil.RTMPURL(t, testutil.ClosedPort(t), secretKey)}}, nil)

	// The publishers start once the encoder has produced its tracks.
	// Writes may fail once the session has ended: that is the point.
	_ = writeChunks(s, data)
	select {
	case <-s.Ended():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end by itself")
	}
	began := time.Now()
	s.Close()
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v, want < 2 s", d)
	}
	err = s.Err()
	if !errors.Is(err, ErrAllDestinationsFailed) {
		t.Fatalf("Err = %v, want ErrAllDestinationsFailed", err)
	}
	if !strings.Contains(err.Error(), "could not connect") || strings.Contains(err.Error(), secretKey) {
		t.Errorf("Err = %q: want the reason, without the stream key", err)
	}
	evs := ev.get()
	if len(evs) == 0 || evs[len(evs)-1].State != publish.StateFailed {
		t.Errorf("events %+v, want the last to be failed", evs)
	}
	if err := s.Write([]byte{0x1a}); err == nil {
		t.Error("Write after the end succeeded")
	}
}

func TestCloseRightAfterStart(t *testing.T) {
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	s, _ := newSession(t, []Destination{{Name: "local", URL: testutil.RTMPURL(t, rcv.Addr().String(), "test")}}, nil)
	began := time.Now()
	s.Close()
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v, want < 2 s", d)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done is not closed after Close")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after Close with no input: %v", err)
	}
	if kids := testutil.FFmpegChildren(t); len(kids) != 0 {
		t.Errorf("ffmpeg children still running after Close: %v", kids)
	}
}

func TestStartErrors(t *testing.T) {
	for _, ca := range []struct {
		name  string
		tweak func(*Session)
	}{
		{"no destination", func(s *Session) { s.Destinations = nil }},
		{"no demuxer", func(s *Session) { s.NewDemuxer = nil }},
	} {
		t.Run(ca.name, func(t *testing.T) {
			s := &Session{
				Log: testutil.Logger(), FFmpegPath: "ffmpeg", Encode: passthrough, NewDemuxer: newWebM,
				Destinations: []Destination{{Name: "x", URL: testutil.RTMPURL(t, "127.0.0.1:1", "k")}},
			}
			ca.tweak(s)
			if err := s.Start(context.Background()); err == nil {
				s.Close()
				t.Fatal("Start succeeded")
			}
		})
	}
}

// newWebM is the demuxer of the browsers' WebM/Matroska.
func newWebM(r io.Reader) (media.Demuxer, error) { return webm.NewReader(r) }

// TestEncoderCannotStart: a session whose encoder cannot run ends with
// ErrEncoderFailed once media arrives.
func TestEncoderCannotStart(t *testing.T) {
	for _, ca := range []struct {
		name  string
		tweak func(*Session)
	}{
		{"no ffmpeg", func(s *Session) { s.FFmpegPath = filepath.Join(t.TempDir(), "no-ffmpeg") }},
		{"bad options", func(s *Session) { s.Encode.AudioSampleRate = 8000 }},
	} {
		t.Run(ca.name, func(t *testing.T) {
			data, err := os.ReadFile(testFile)
			if err != nil {
				t.Fatal(err)
			}
			s := &Session{
				Log: testutil.Logger(), FFmpegPath: "ffmpeg", Encode: passthrough, NewDemuxer: newWebM,
				Destinations: []Destination{{Name: "x", URL: testutil.RTMPURL(t, "127.0.0.1:1", "k")}},
			}
			ca.tweak(s)
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_ = s.Write(data) // fails once the session has ended
			<-s.Ended()
			s.Close()
			if err := s.Err(); !errors.Is(err, ErrEncoderFailed) {
				t.Fatalf("Err = %v, want ErrEncoderFailed", err)
			}
		})
	}
}

// A broadcast made of several streams (a MediaRecorder started again, or a
// client that resumed) reaches the destination as one stream whose time
// goes on; the first stream may be cut off anywhere.
func TestRestartKeepsOneBroadcast(t *testing.T) {
	data, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	m := metrics.New()
	s, ev := newSession(t, []Destination{{Name: "local", URL: testutil.RTMPURL(t, rcv.Addr().String(), "test")}}, m)

	for i, part := range [][]byte{data, data[:len(data)*2/3], data} {
		if i > 0 {
			if err := s.Restart(30 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if err := writeChunks(s, part); err != nil {
			t.Fatal(err)
		}
	}
	s.Finish()
	if err := s.Err(); err != nil {
		t.Fatalf("Err after a clean Finish: %v", err)
	}
	if st := s.Stats(); st.Restarts != 2 {
		t.Errorf("Restarts %d, want 2", st.Restarts)
	}
	var states []string
	for _, e := range ev.get() {
		states = append(states, string(e.State))
	}
	if got := strings.Join(states, ","); got != "connecting,live,ended" {
		t.Errorf("events %s, want one connection: connecting,live,ended", got)
	}
	testutil.WaitFor(t, "the stream ends at the receiver", 5*time.Second, func() bool {
		r := rcv.Streams()
		return len(r) == 1 && !r[0].Active
	})
	r := rcv.Streams()[0]
	// 4 s + about 2.7 s + 4 s at 30 fps, in one publish.
	if v := r.Video; v == nil || v.Frames < 310 || v.Frames > 325 {
		t.Errorf("video %+v, want about 320 frames", v)
	}
	if a := r.Audio; a == nil || a.Frames < 440 {
		t.Errorf("audio %+v, want about 500 frames (10.7 s)", a)
	}
	if d := r.LastPTSms - r.FirstPTSms; d < 10_300 || d > 11_000 {
		t.Errorf("received %d..%d ms (%d ms), want about 10.7 s", r.FirstPTSms, r.LastPTSms, d)
	}
	if got := testutil.MetricValue(t, m.Handler(), `livegate_ingest_to_publish_seconds_count{destination="local"}`); got == "" || got == "0" {
		t.Errorf("livegate_ingest_to_publish_seconds_count %q, want the packets written", got)
	}
	if got := testutil.MetricValue(t, m.Handler(), "livegate_stream_restarts_total"); got != "2" {
		t.Errorf("livegate_stream_restarts_total %s, want 2", got)
	}
}

// A new stream with other codecs than the broadcast's ends the session as
// bad media.
func TestRestartWithOtherCodecs(t *testing.T) {
	data, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	vp8, err := os.ReadFile("../ingest/mediarecorder/testdata/vp8.webm")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	s, _ := newSession(t, []Destination{{Name: "local", URL: testutil.RTMPURL(t, rcv.Addr().String(), "test")}}, nil)
	if err := writeChunks(s, data); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(0); err != nil {
		t.Fatal(err)
	}
	_ = writeChunks(s, vp8) // fails once the session has ended
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end")
	}
	if err := s.Err(); !errors.Is(err, ErrBadMedia) || !strings.Contains(err.Error(), "keep the broadcast's codecs") {
		t.Errorf("Err %v, want ErrBadMedia about the codecs", err)
	}
}
