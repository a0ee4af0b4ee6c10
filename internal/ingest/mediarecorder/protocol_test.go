package mediarecorder

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/livegate/livegate/internal/media"
)

// checkRefusal asserts a protocol error's code, close code, and that its
// message is a sentence a person can read: not empty, not a Go value dump,
// not an echo of a huge input.
func checkRefusal(t *testing.T, perr *protoError, code string, closeCode int) {
	t.Helper()
	if perr == nil {
		t.Fatalf("accepted, want %s", code)
	}
	if perr.Code != code {
		t.Errorf("code %q, want %q (message %q)", perr.Code, code, perr.Message)
	}
	if perr.Close != closeCode {
		t.Errorf("close code %d, want %d", perr.Close, closeCode)
	}
	msg := perr.Message
	if len(msg) < 10 {
		t.Errorf("message %q says too little", msg)
	}
	if len(msg) > 300 {
		t.Errorf("message is %d bytes long: %q", len(msg), msg)
	}
	for _, dump := range []string{"&{", "%!", "map[", "<nil>", "Go struct", "Go value", "clientMessage", "mediarecorder.", "0xc0"} {
		if strings.Contains(msg, dump) {
			t.Errorf("message %q contains %q: it should be a sentence, not a Go dump", msg, dump)
		}
	}
	if want := code + ": " + msg; perr.Error() != want {
		t.Errorf("Error() = %q, want %q", perr.Error(), want)
	}
}

func TestParseMime(t *testing.T) {
	long := "video/webm;codecs=vp8,opus" + strings.Repeat(" ", 200-len("video/webm;codecs=vp8,opus"))
	for _, ca := range []struct {
		name      string
		mime      string
		container Container   // 0: Matroska
		video     media.Codec // both unknown: refused
		audio     media.Codec
	}{
		{name: "chromium matroska h264", mime: "video/x-matroska;codecs=avc1.42C01F,opus", video: media.CodecH264, audio: media.CodecOpus},
		{name: "matroska avc1", mime: "video/x-matroska;codecs=avc1,opus", video: media.CodecH264, audio: media.CodecOpus},
		{name: "avc3", mime: "video/x-matroska;codecs=avc3.64001f,opus", video: media.CodecH264, audio: media.CodecOpus},
		{name: "webm h264", mime: "video/webm;codecs=h264,opus", video: media.CodecH264, audio: media.CodecOpus},
		{name: "webm vp8", mime: "video/webm;codecs=vp8,opus", video: media.CodecVP8, audio: media.CodecOpus},
		{name: "firefox quoted with spaces", mime: `video/webm; codecs="vp8, opus"`, video: media.CodecVP8, audio: media.CodecOpus},
		{name: "quoted without space", mime: `video/webm;codecs="vp8,opus"`, video: media.CodecVP8, audio: media.CodecOpus},
		{name: "upper case", mime: "VIDEO/WEBM;CODECS=VP8,OPUS", video: media.CodecVP8, audio: media.CodecOpus},
		{name: "mixed case chromium", mime: "video/x-matroska;codecs=AVC1.42C01F,Opus", video: media.CodecH264, audio: media.CodecOpus},
		{name: "vp9", mime: "video/webm;codecs=vp9,opus", video: media.CodecVP9, audio: media.CodecOpus},
		{name: "vp09 full name", mime: "video/webm;codecs=vp09.00.10.08,opus", video: media.CodecVP9, audio: media.CodecOpus},
		{name: "av1", mime: "video/webm;codecs=av1,opus", video: media.CodecAV1, audio: media.CodecOpus},
		{name: "av01 full name", mime: "video/webm;codecs=av01.0.04m.08,opus", video: media.CodecAV1, audio: media.CodecOpus},
		{name: "video only", mime: "video/webm;codecs=vp8", video: media.CodecVP8},
		{name: "audio first", mime: "video/webm;codecs=opus,vp8", video: media.CodecVP8, audio: media.CodecOpus},
		{name: "audio only", mime: "audio/webm;codecs=opus", audio: media.CodecOpus},
		// Space around a codec name is ignored, a newline too: only the
		// meaning goes further, never the text.
		{name: "newline", mime: "video/webm;codecs=vp8\n,opus", video: media.CodecVP8, audio: media.CodecOpus},
		{name: "200 bytes", mime: long, video: media.CodecVP8, audio: media.CodecOpus},

		{name: "safari mp4", mime: "video/mp4;codecs=avc1.42C01F,mp4a.40.2", container: ContainerMP4, video: media.CodecH264, audio: media.CodecAAC},
		{name: "chromium mp4", mime: "video/mp4;codecs=avc1,opus", container: ContainerMP4, video: media.CodecH264, audio: media.CodecOpus},
		{name: "mp4 bare", mime: "video/mp4"},
		{name: "aac in webm", mime: "video/webm;codecs=vp8,mp4a.40.2"},
		{name: "ogg", mime: "audio/ogg;codecs=opus"},
		{name: "no codecs", mime: "video/webm"},
		{name: "empty codecs", mime: "video/webm;codecs="},
		{name: "empty quoted codecs", mime: `video/webm;codecs=""`},
		{name: "two video codecs", mime: "video/webm;codecs=vp8,vp9,opus"},
		{name: "two audio codecs", mime: "video/webm;codecs=vp8,opus,opus"},
		{name: "hevc", mime: "video/x-matroska;codecs=hevc,opus"},
		{name: "hvc1", mime: "video/x-matroska;codecs=hvc1.1.6.l93.b0,opus"},
		{name: "pcm audio", mime: "video/x-matroska;codecs=avc1,pcm"},
		{name: "empty codec in list", mime: "video/webm;codecs=vp8,,opus"},
		{name: "ffmpeg arguments in codecs", mime: "video/webm;codecs=vp8 -i x"},
		{name: "ffmpeg arguments after codecs", mime: "video/webm;codecs=vp8,opus -f flv rtmp://evil/x"},
		{name: "shell in a parameter", mime: "video/webm;codecs=vp8,opus;$(rm -rf /)"},
		{name: "shell in codecs", mime: "video/webm;codecs=vp8,$(reboot)"},
		{name: "unknown parameter", mime: "video/webm;codecs=vp8,opus;x=y"},
		{name: "codecs twice", mime: "video/webm;codecs=vp8,opus;codecs=avc1"},
		{name: "nul byte", mime: "video/webm;codecs=vp8\x00,opus"},
		{name: "non-ascii", mime: "video/webm;codecs=vp8,ópus"},
		{name: "201 bytes", mime: long + " "},
		{name: "300 bytes", mime: "video/webm;codecs=" + strings.Repeat("vp8,", 70) + "opus"},
		{name: "300 bytes of junk", mime: strings.Repeat("\"", 300)},
		{name: "empty", mime: ""},
		{name: "spaces", mime: "   "},
	} {
		t.Run(ca.name, func(t *testing.T) {
			req, perr := parseMime(ca.mime)
			if ca.video == media.CodecUnknown && ca.audio == media.CodecUnknown {
				if req != nil {
					t.Errorf("returned a request with the error: %+v", req)
				}
				checkRefusal(t, perr, "unsupported_media", closeUnsupported)
				return
			}
			if perr != nil {
				t.Fatalf("refused: %v", perr)
			}
			want := ca.container
			if want == 0 {
				want = ContainerMatroska
			}
			if req.Container != want {
				t.Errorf("container %v, want %v", req.Container, want)
			}
			if req.Video != ca.video || req.Audio != ca.audio {
				t.Errorf("codecs %v + %v, want %v + %v", req.Video, req.Audio, ca.video, ca.audio)
			}
			if req.Destinations != nil {
				t.Errorf("destinations %q before validateStart", req.Destinations)
			}
		})
	}
}

func TestParseClientMessage(t *testing.T) {
	pad := func(n int) string { // a valid stop message of exactly n bytes
		const stop = `{"type":"stop"}`
		return stop + strings.Repeat(" ", n-len(stop))
	}
	for _, ca := range []struct {
		name string
		data string
		want *clientMessage // nil: refused with bad_message
	}{
		{
			name: "start",
			data: `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/webm;codecs=vp8,opus","destinations":["local"]}`,
			want: &clientMessage{Type: "start", Version: 1, Ingest: "mediarecorder", Mime: "video/webm;codecs=vp8,opus", Destinations: []string{"local"}},
		},
		{name: "stop", data: `{"type":"stop"}`, want: &clientMessage{Type: "stop"}},
		{name: "unknown field refused", data: `{"type":"stop","reason":"done"}`},
		{name: "a url is refused", data: `{"type":"start","version":1,"ingest":"mediarecorder","destinations":["local"],"url":"rtmp://evil/x"}`},
		{name: "two values", data: `{"type":"stop"}{"type":"stop"}`},
		{name: "4096 bytes", data: pad(4096), want: &clientMessage{Type: "stop"}},

		{name: "not json", data: "hello"},
		{name: "empty", data: ""},
		{name: "truncated", data: `{"type":"start"`},
		{name: "trailing garbage", data: `{"type":"stop"} x`},
		{name: "two objects", data: `{"type":"stop"}{"type":"stop"}`},
		{name: "binary junk", data: "\x00\xff\xfe"},
		{name: "unknown type", data: `{"type":"play"}`},
		{name: "type case", data: `{"type":"START"}`},
		{name: "no type", data: `{"version":1}`},
		{name: "empty object", data: `{}`},
		{name: "null", data: `null`},
		{name: "long unknown type", data: `{"type":"` + strings.Repeat("x", 3000) + `"}`},
		{name: "type is a number", data: `{"type":1}`},
		{name: "version is a string", data: `{"type":"start","version":"1"}`},
		{name: "version is huge", data: `{"type":"start","version":1e99}`},
		{name: "destinations is a string", data: `{"type":"start","destinations":"local"}`},
		{name: "destination is a number", data: `{"type":"start","destinations":[1]}`},
		{name: "array", data: `[{"type":"stop"}]`},
		{name: "string", data: `"start"`},
		{name: "number", data: `1`},
		{name: "4097 bytes", data: pad(4097)},
		{name: "oversize", data: `{"type":"start","mime":"` + strings.Repeat("a", 1<<20) + `"}`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			m, perr := parseClientMessage([]byte(ca.data))
			if ca.want == nil {
				if m != nil {
					t.Errorf("returned a message with the error: %+v", m)
				}
				checkRefusal(t, perr, "bad_message", closeBadRequest)
				return
			}
			if perr != nil {
				t.Fatalf("refused: %v", perr)
			}
			if m.Type != ca.want.Type || m.Version != ca.want.Version || m.Ingest != ca.want.Ingest ||
				m.Mime != ca.want.Mime || !slices.Equal(m.Destinations, ca.want.Destinations) {
				t.Errorf("got %+v, want %+v", m, ca.want)
			}
		})
	}
}

func TestParseClientMessageSays(t *testing.T) {
	for _, ca := range []struct {
		name string
		data string
		want string
	}{
		{name: "oversize", data: strings.Repeat(" ", 5000), want: "at most 4096 bytes"},
		{name: "not json", data: "hello", want: "must be JSON"},
		{name: "unknown type", data: `{"type":"play"}`, want: `unknown message type "play"; expected start, stop, restart, ping or resume`},
		{name: "wrong field type", data: `{"type":"start","version":"1"}`, want: `field "version"`},
		{name: "not an object", data: `[]`, want: "must be a JSON object"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			_, perr := parseClientMessage([]byte(ca.data))
			if perr == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(perr.Message, ca.want) {
				t.Errorf("message %q does not say %q", perr.Message, ca.want)
			}
		})
	}
}

func TestValidateStart(t *testing.T) {
	known := map[string]bool{"local": true, "youtube": true, "twitch": true}
	many := map[string]bool{}
	for i := range 9 {
		many[fmt.Sprintf("d%d", i)] = true
	}
	start := func(change func(*clientMessage)) *clientMessage {
		m := &clientMessage{
			Type: "start", Version: 1, Ingest: "mediarecorder",
			Mime: "video/x-matroska;codecs=avc1.42C01F,opus", Destinations: []string{"local"},
		}
		change(m)
		return m
	}
	for _, ca := range []struct {
		name   string
		msg    *clientMessage
		known  map[string]bool // default: known
		code   string          // empty: accepted
		close  int
		saying string // part of the message
	}{
		{name: "one destination", msg: start(func(*clientMessage) {})},
		{name: "three destinations", msg: start(func(m *clientMessage) { m.Destinations = []string{"youtube", "local", "twitch"} })},
		{name: "eight destinations", known: many, msg: start(func(m *clientMessage) {
			m.Destinations = []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"}
		})},

		{name: "version 0", msg: start(func(m *clientMessage) { m.Version = 0 }),
			code: "unsupported_version", close: closeBadRequest, saying: "protocol version 0 is not supported; this server speaks version 1"},
		{name: "version 2", msg: start(func(m *clientMessage) { m.Version = 2 }),
			code: "unsupported_version", close: closeBadRequest, saying: "version 2"},
		{name: "version negative", msg: start(func(m *clientMessage) { m.Version = -1 }),
			code: "unsupported_version", close: closeBadRequest},
		{name: "version checked first", msg: start(func(m *clientMessage) { m.Version, m.Ingest, m.Mime, m.Destinations = 2, "x", "x", nil }),
			code: "unsupported_version", close: closeBadRequest},
		{name: "ingest webcodecs without codecs", msg: start(func(m *clientMessage) { m.Ingest = "webcodecs" }),
			code: "unsupported_media", close: closeUnsupported, saying: "does not name its codecs"},
		{name: "ingest webcodecs with vp8", msg: start(func(m *clientMessage) { m.Ingest, m.Codecs = "webcodecs", "vp8,opus" }),
			code: "unsupported_media", close: closeUnsupported, saying: "takes H.264 and Opus"},
		{name: "ingest webrtc", msg: start(func(m *clientMessage) { m.Ingest = "webrtc" }),
			code: "unsupported_ingest", close: closeBadRequest, saying: `ingest "webrtc" is not supported; use mediarecorder or webcodecs`},
		{name: "ingest empty", msg: start(func(m *clientMessage) { m.Ingest = "" }),
			code: "unsupported_ingest", close: closeBadRequest},
		{name: "ingest case", msg: start(func(m *clientMessage) { m.Ingest = "MediaRecorder" }),
			code: "unsupported_ingest", close: closeBadRequest},
		{name: "ingest long", msg: start(func(m *clientMessage) { m.Ingest = strings.Repeat("x", 1000) }),
			code: "unsupported_ingest", close: closeBadRequest},
		{name: "mime mp4 without codecs", msg: start(func(m *clientMessage) { m.Mime = "video/mp4" }),
			code: "unsupported_media", close: closeUnsupported, saying: "does not name its codecs"},
		{name: "mime ogg", msg: start(func(m *clientMessage) { m.Mime = "audio/ogg;codecs=opus" }),
			code: "unsupported_media", close: closeUnsupported, saying: "not WebM, Matroska or MP4"},
		{name: "mime empty", msg: start(func(m *clientMessage) { m.Mime = "" }),
			code: "unsupported_media", close: closeUnsupported},
		{name: "mime checked before destinations", msg: start(func(m *clientMessage) { m.Mime, m.Destinations = "video/mp4", nil }),
			code: "unsupported_media", close: closeUnsupported},
		{name: "no destinations", msg: start(func(m *clientMessage) { m.Destinations = nil }),
			code: "unknown_destination", close: closeNotFound, saying: "no destination chosen; choose one of: local, twitch, youtube"},
		{name: "empty destinations", msg: start(func(m *clientMessage) { m.Destinations = []string{} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "unknown", msg: start(func(m *clientMessage) { m.Destinations = []string{"facebook"} }),
			code: "unknown_destination", close: closeNotFound, saying: `destination "facebook" is not configured on this server; choose one of: local, twitch, youtube`},
		{name: "one of two unknown", msg: start(func(m *clientMessage) { m.Destinations = []string{"local", "facebook"} }),
			code: "unknown_destination", close: closeNotFound, saying: `"facebook"`},
		{name: "case differs", msg: start(func(m *clientMessage) { m.Destinations = []string{"Local"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "duplicate", msg: start(func(m *clientMessage) { m.Destinations = []string{"local", "youtube", "local"} }),
			code: "unknown_destination", close: closeNotFound, saying: `destination "local" is named twice`},
		{name: "nine destinations", known: many, msg: start(func(m *clientMessage) {
			m.Destinations = []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"}
		}), code: "unknown_destination", close: closeNotFound, saying: "at most 8 destinations"},
		{name: "empty name", msg: start(func(m *clientMessage) { m.Destinations = []string{""} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "rtmp url", msg: start(func(m *clientMessage) { m.Destinations = []string{"rtmp://evil/x"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "rtmp url with name fragment", msg: start(func(m *clientMessage) { m.Destinations = []string{"rtmp://evil/x#local"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "file url", msg: start(func(m *clientMessage) { m.Destinations = []string{"file:///tmp/x"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "ffmpeg pipe", msg: start(func(m *clientMessage) { m.Destinations = []string{"pipe:1"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "relative path", msg: start(func(m *clientMessage) { m.Destinations = []string{"../"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "path to a known name", msg: start(func(m *clientMessage) { m.Destinations = []string{"../local"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "cloud metadata", msg: start(func(m *clientMessage) { m.Destinations = []string{"http://169.254.169.254/"} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "padded name", msg: start(func(m *clientMessage) { m.Destinations = []string{"local "} }),
			code: "unknown_destination", close: closeNotFound},
		{name: "long name", msg: start(func(m *clientMessage) { m.Destinations = []string{strings.Repeat("a", 2000)} }),
			code: "unknown_destination", close: closeNotFound},
	} {
		t.Run(ca.name, func(t *testing.T) {
			k := ca.known
			if k == nil {
				k = known
			}
			req, perr := validateStart(ca.msg, k)
			if ca.code != "" {
				if req != nil {
					t.Errorf("returned a request with the error: %+v", req)
				}
				checkRefusal(t, perr, ca.code, ca.close)
				if perr != nil && !strings.Contains(perr.Message, ca.saying) {
					t.Errorf("message %q does not say %q", perr.Message, ca.saying)
				}
				return
			}
			if perr != nil {
				t.Fatalf("refused: %v", perr)
			}
			if !slices.Equal(req.Destinations, ca.msg.Destinations) {
				t.Errorf("destinations %q, want %q", req.Destinations, ca.msg.Destinations)
			}
			if req.Container != ContainerMatroska || req.Video != media.CodecH264 || req.Audio != media.CodecOpus {
				t.Errorf("got %+v, want matroska H264 + Opus", req)
			}
		})
	}
}
