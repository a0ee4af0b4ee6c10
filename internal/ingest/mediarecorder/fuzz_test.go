package mediarecorder

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/session"
)

// The fields of a control message (docs/protocol.md): nothing else may be
// accepted.
var protocolFields = []string{"type", "version", "ingest", "mime", "codecs", "destinations", "profile", "keys", "session", "token", "id"}

// fuzzHandler is what a start is resolved against: the built-in receiver,
// a bring-your-own-key destination whose server is the operator's (the
// real config type, as cmd/livegate wires it), and an RTMPS preset.
func fuzzSettings(tb testing.TB) *snapshot {
	tb.Helper()
	local, err := url.Parse("rtmp://127.0.0.1:1935/live#local")
	if err != nil {
		tb.Fatal(err)
	}
	byok := config.Destination{Name: "byok", Preset: config.PresetCustom, Server: "rtmp://rtmp.example.com/live", KeyFromClient: true}
	yt := config.Destination{Name: "yt", Preset: config.PresetYouTube, Key: "abcd-efgh-ijkl-mnop"}
	return newSnapshot(Settings{
		Destinations: map[string]Destination{
			"local": {Name: "local", Target: fixed(local)},
			"byok":  {Name: "byok", Target: byok.Target, KeyFromClient: true, Profiles: []string{"720p"}},
			"yt":    {Name: "yt", Target: yt.Target, Profile: "720p"},
		},
		Profiles: map[string]session.Profile{"720p": {Name: "720p", Width: 1280, Height: 720, FPS: 30}},
	})
}

// clientKeyRule is config's default pattern for a streamer's own key.
var clientKeyRule = regexp.MustCompile(`^[A-Za-z0-9_-]{8,128}$`)

// FuzzParseClientMessage: whatever text a client sends, parsing,
// validating and resolving a start never panics; a refusal carries a code,
// a protocol close code and a sentence that never repeats a stream key; a
// message with a field the protocol does not list is refused; and an
// accepted start names only configured destinations, whose scheme, host
// and app stay the operator's (the key, for the bring-your-own-key one,
// matching the strict pattern).
func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{
		startH264,
		`{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42e01f,opus","destinations":["local"]}`,
		`{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/mp4;codecs=\"avc1.42c01f,mp4a.40.2\"","destinations":["local","byok"],"profile":"720p","keys":{"byok":"live_123456789_abcdef"}}`,
		`{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/webm;codecs=vp8,opus","destinations":["yt"],"token":"lg1.e30.AAAA"}`,
		`{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/webm;codecs=vp8,opus","destinations":["byok"],"keys":{"byok":"a/b?c d"}}`,
		`{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/webm","destinations":["rtmp://evil/x"],"url":"rtmp://evil/x"}`,
		`{"type":"start","version":1,"protocol":"rtmp","destinations":["yt"]}`,
		`{"type":"resume","version":1,"session":"abcdefgh","token":"xyz"}`,
		`{"type":"ping","id":1e308}`,
		`{"type":"ping","id":-0.5}`,
		`{"type":"stop"}`,
		`{"type":"restart"}`,
		`{"Type":"start","VERSION":1}`,
		`[]`, `null`, `"start"`, `{"type":"start"} {}`, `{`,
	} {
		f.Add([]byte(s))
	}
	set := fuzzSettings(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, perr := parseClientMessage(data)
		if perr != nil {
			checkSentence(t, perr)
			return
		}
		checkFields(t, data)
		switch m.Type {
		case "start", "stop", "restart", "resume":
		case "ping":
			if _, err := m.ID.Float64(); err != nil {
				t.Fatalf("a ping with id %q accepted", m.ID)
			}
		default:
			t.Fatalf("type %q accepted", m.Type)
		}
		if m.Type != "start" {
			return
		}
		req, perr := validateStart(m, set.known)
		if perr != nil {
			checkSentence(t, perr)
			return
		}
		checkStart(t, m, req)
		dests, profile, perr := set.resolve(req.Destinations, req.Profile, req.Keys)
		if perr != nil {
			checkSentence(t, perr)
			// The sentence is the same whatever the key's characters
			// (of the same kinds): it cannot be repeating the key. (With
			// one key only: of several bad ones, any may be named.)
			if len(req.Keys) == 1 {
				shifted := make(map[string]string, len(req.Keys))
				for k, v := range req.Keys {
					shifted[k] = shiftKey(v)
				}
				_, _, again := set.resolve(req.Destinations, req.Profile, shifted)
				if again == nil || again.Code != perr.Code || again.Message != perr.Message {
					t.Fatalf("the refusal depends on the key's characters: %q, then %v", perr.Message, again)
				}
			}
			return
		}
		if len(dests) != len(req.Destinations) {
			t.Fatalf("%d destinations resolved for %d names", len(dests), len(req.Destinations))
		}
		for _, d := range dests {
			checkTarget(t, d, req.Keys[d.Name])
		}
		if profile != nil && profile.Name != "720p" {
			t.Fatalf("profile %+v resolved", profile)
		}
	})
}

func checkSentence(t *testing.T, perr *protoError) {
	t.Helper()
	if perr.Code == "" || perr.Close < 4400 || perr.Close > 4599 || len(perr.Message) < 10 {
		t.Fatalf("refusal %+v: want a code, a 44xx/45xx close code and a sentence", perr)
	}
	if !utf8.ValidString(perr.Message) || len(perr.Message) > 1024 {
		t.Fatalf("refusal message of %d bytes, valid UTF-8 %v: %q", len(perr.Message), utf8.ValidString(perr.Message), perr.Message)
	}
	for _, dump := range []string{"&{", "%!", "map[", "<nil>", "Go struct", "Go value", "clientMessage", "0xc0"} {
		if strings.Contains(perr.Message, dump) {
			t.Fatalf("refusal message %q holds %q: a Go dump, not a sentence", perr.Message, dump)
		}
	}
}

// checkFields: an accepted message holds only protocol fields. (Go's JSON
// decoder matches field names without regard to case.)
func checkFields(t *testing.T, data []byte) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatalf("accepted a message that is not a JSON object: %v", err)
	}
	for name := range fields {
		ok := false
		for _, f := range protocolFields {
			ok = ok || strings.EqualFold(name, f)
		}
		if !ok {
			t.Fatalf("accepted a message with the field %q", name)
		}
	}
}

func checkStart(t *testing.T, m *clientMessage, req *startRequest) {
	t.Helper()
	if len(req.Destinations) == 0 || len(req.Destinations) > maxDestinations {
		t.Fatalf("%d destinations accepted", len(req.Destinations))
	}
	seen := map[string]bool{}
	for _, d := range req.Destinations {
		if d != "local" && d != "byok" && d != "yt" || seen[d] {
			t.Fatalf("destinations %q accepted", req.Destinations)
		}
		seen[d] = true
	}
	if req.Video == media.CodecUnknown && req.Audio == media.CodecUnknown {
		t.Fatalf("a start with no codec accepted: %+v", m)
	}
	if (req.Video != media.CodecUnknown && !req.Video.IsVideo()) || (req.Audio != media.CodecUnknown && req.Audio.IsVideo()) {
		t.Fatalf("codecs %v/%v in the wrong places", req.Video, req.Audio)
	}
	switch {
	case m.Ingest == "webcodecs":
		if req.Container != ContainerWebCodecs || (req.Video != media.CodecUnknown && req.Video != media.CodecH264) ||
			(req.Audio != media.CodecUnknown && req.Audio != media.CodecOpus) {
			t.Fatalf("webcodecs start accepted as %+v", req)
		}
	case m.Ingest == "mediarecorder":
		if req.Container != ContainerMatroska && req.Container != ContainerMP4 || len(m.Mime) > maxMimeLen {
			t.Fatalf("mime %q accepted as %+v", m.Mime, req)
		}
	default:
		t.Fatalf("ingest %q accepted", m.Ingest)
	}
}

// checkTarget: what a destination publishes to is the operator's; only a
// key the strict pattern allows comes from the client.
func checkTarget(t *testing.T, d session.Destination, key string) {
	t.Helper()
	u := d.URL
	var want string
	switch d.Name {
	case "local":
		want = "rtmp://127.0.0.1:1935/live#local"
	case "byok":
		if !clientKeyRule.MatchString(key) || u.Fragment != key {
			t.Fatalf("byok published with the key %q (fragment %q)", key, u.Fragment)
		}
		want = "rtmp://rtmp.example.com:1935/live#" + key
	case "yt":
		want = "rtmps://a.rtmps.youtube.com:443/live2#abcd-efgh-ijkl-mnop"
	default:
		t.Fatalf("resolved destination %q", d.Name)
	}
	if u.String() != want || u.User != nil || u.RawQuery != "" || u.Opaque != "" {
		t.Fatalf("%s publishes to %s, want %s", d.Name, u.Redacted(), want)
	}
}

// shiftKey changes every letter and digit of a key into another of its
// kind, so that a pattern of character classes judges both alike.
func shiftKey(k string) string {
	b := []byte(k)
	for i, c := range b {
		switch {
		case c >= 'a' && c < 'z', c >= 'A' && c < 'Z', c >= '0' && c < '9':
			b[i] = c + 1
		case c == 'z', c == 'Z':
			b[i] = c - 25
		case c == '9':
			b[i] = '0'
		}
	}
	return string(b)
}
