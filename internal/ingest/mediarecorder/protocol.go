package mediarecorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/livegate/livegate/internal/media"
)

// ProtocolVersion is the version of docs/protocol.md this package speaks.
const ProtocolVersion = 1

const (
	maxMimeLen       = 200
	maxDestinations  = 8
	maxControlLength = 4096
)

// Close codes (docs/protocol.md).
const (
	closeBadRequest    = 4400
	closeUnauthorized  = 4401
	closeForbidden     = 4403
	closeNotFound      = 4404
	closeTimeout       = 4408
	closeUnsupported   = 4415
	closeUnprocessable = 4422
	closeGone          = 4410 // the operator ended the broadcast
	closeTooMany       = 4429
	closeInternal      = 4500
	closeBadGateway    = 4502
)

// protoError is a refusal the browser is told about, then the socket closes.
type protoError struct {
	Code    string
	Message string
	Close   int
}

func (e *protoError) Error() string { return e.Code + ": " + e.Message }

func errorf(code string, closeCode int, format string, args ...any) *protoError {
	return &protoError{Code: code, Close: closeCode, Message: fmt.Sprintf(format, args...)}
}

// clientMessage is any text message from the browser.
type clientMessage struct {
	Type         string            `json:"type"`
	Version      int               `json:"version"`
	Ingest       string            `json:"ingest"`
	Mime         string            `json:"mime"`
	Codecs       string            `json:"codecs,omitempty"`
	Destinations []string          `json:"destinations"`
	Profile      string            `json:"profile,omitempty"`
	Keys         map[string]string `json:"keys,omitempty"`
	// resume
	Session string `json:"session,omitempty"`
	// Token is the credential of the message: in start, who publishes
	// (a static or signed token, docs/security.md); in resume, the
	// broadcast's resume token.
	Token string `json:"token,omitempty"`
	// ping: any JSON number, sent back as it came
	ID json.Number `json:"id,omitempty"`
}

// Container is a byte-stream format the ingest can demux.
type Container int

// Containers.
const (
	ContainerMatroska  Container = iota + 1 // WebM and Matroska (Chromium, Firefox)
	ContainerMP4                            // fragmented MP4 (Chromium, Safari)
	ContainerWebCodecs                      // WebCodecs frames (internal/ingest/webcodecs)
)

// startRequest is a validated start message.
type startRequest struct {
	Container    Container
	Video        media.Codec // CodecUnknown when there is no video
	Audio        media.Codec
	Destinations []string
	Profile      string
	Keys         map[string]string
}

func parseClientMessage(data []byte) (*clientMessage, *protoError) {
	if len(data) > maxControlLength {
		return nil, errorf("bad_message", closeBadRequest, "a control message may be at most %d bytes", maxControlLength)
	}
	var m clientMessage
	// Unknown fields are refused: a client that sends a "url", "host" or
	// "args" learns at once that livegate never takes one.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&m)
	// More is false before a '}' or ']' that closes nothing: look at the
	// rest of the text itself.
	if err == nil && len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, errorf("bad_message", closeBadRequest, "field %s is not part of the protocol (livegate never takes a URL, host, path or encoder argument from the browser); see docs/protocol.md", truncate(f, 40))
		}
		// A type error would name Go types ("Go struct field
		// clientMessage.version of type int"): say it in protocol terms.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return nil, errorf("bad_message", closeBadRequest, "a control message must be a JSON object")
			}
			return nil, errorf("bad_message", closeBadRequest, "field %q of a control message cannot be a JSON %s; see docs/protocol.md", truncate(te.Field, 40), truncate(te.Value, 40))
		}
		return nil, errorf("bad_message", closeBadRequest, "a control message must be JSON: %v", err)
	}
	switch m.Type {
	case "start", "stop", "restart", "resume":
		return &m, nil
	case "ping":
		if _, err := m.ID.Float64(); err != nil {
			return nil, errorf("bad_message", closeBadRequest, "a ping needs a number as its id")
		}
		return &m, nil
	}
	return nil, errorf("bad_message", closeBadRequest, "unknown message type %q; expected start, stop, restart, ping or resume", truncate(m.Type, 40))
}

// validateStart checks a start message against what livegate offers.
// known holds the configured destination names.
func validateStart(m *clientMessage, known map[string]bool) (*startRequest, *protoError) {
	if m.Version != ProtocolVersion {
		return nil, errorf("unsupported_version", closeBadRequest, "protocol version %d is not supported; this server speaks version %d", m.Version, ProtocolVersion)
	}
	var req *startRequest
	var perr *protoError
	switch m.Ingest {
	case "mediarecorder":
		req, perr = parseMime(m.Mime)
	case "webcodecs":
		req, perr = parseWebCodecs(m.Codecs)
	default:
		return nil, errorf("unsupported_ingest", closeBadRequest, "ingest %q is not supported; use mediarecorder or webcodecs", truncate(m.Ingest, 40))
	}
	if perr != nil {
		return nil, perr
	}
	if len(m.Destinations) == 0 {
		return nil, errorf("unknown_destination", closeNotFound, "no destination chosen; choose one of: %s", names(known))
	}
	if len(m.Destinations) > maxDestinations {
		return nil, errorf("unknown_destination", closeNotFound, "at most %d destinations per broadcast", maxDestinations)
	}
	seen := make(map[string]bool, len(m.Destinations))
	for _, d := range m.Destinations {
		if !known[d] {
			return nil, errorf("unknown_destination", closeNotFound, "destination %q is not configured on this server; choose one of: %s", truncate(d, 64), names(known))
		}
		if seen[d] {
			return nil, errorf("unknown_destination", closeNotFound, "destination %q is named twice", d)
		}
		seen[d] = true
	}
	req.Destinations = m.Destinations
	req.Profile, req.Keys = m.Profile, m.Keys
	return req, nil
}

var codecToken = regexp.MustCompile(`^[a-z0-9.]+$`)

// parseMime reads a MediaRecorder mimeType such as
// `video/x-matroska;codecs=avc1.42C01F,opus`. Only its meaning is kept: the
// text itself never goes further.
func parseMime(s string) (*startRequest, *protoError) {
	if len(s) > maxMimeLen {
		return nil, errorf("unsupported_media", closeUnsupported, "the media type is longer than %d bytes", maxMimeLen)
	}
	unsupported := func(why string) *protoError {
		return errorf("unsupported_media", closeUnsupported, "media type %q: %s; send video/webm, video/x-matroska or video/mp4 with H.264 (avc1), VP8, VP9 or AV1 video and Opus or AAC (mp4a.40.2) audio", truncate(s, 80), why)
	}
	parts := strings.Split(strings.ToLower(s), ";")
	container := strings.TrimSpace(parts[0])
	req := &startRequest{}
	switch container {
	case "video/webm", "video/x-matroska", "audio/webm":
		req.Container = ContainerMatroska
	case "video/mp4", "audio/mp4":
		req.Container = ContainerMP4
	default:
		return nil, unsupported("the container is not WebM, Matroska or MP4")
	}
	var codecList string
	named := false
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		// MediaRecorder names its codecs and nothing else: anything more is
		// not a recorder's type, and a second codecs would be ambiguous.
		k, v, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(k) != "codecs" {
			return nil, unsupported("it has a parameter other than codecs")
		}
		if named {
			return nil, unsupported("it names its codecs twice")
		}
		named = true
		codecList = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if codecList == "" {
		return nil, unsupported("it does not name its codecs")
	}
	if perr := parseCodecList(req, codecList, unsupported); perr != nil {
		return nil, perr
	}
	if req.Container == ContainerMatroska && req.Audio == media.CodecAAC {
		return nil, unsupported("AAC is not recorded in WebM")
	}
	return req, nil
}

// parseWebCodecs reads the codecs of a webcodecs start: H.264 video from
// VideoEncoder and Opus audio from AudioEncoder, as in "avc1.42e01f,opus".
func parseWebCodecs(list string) (*startRequest, *protoError) {
	unsupported := func(why string) *protoError {
		return errorf("unsupported_media", closeUnsupported, "codecs %q: %s; send H.264 (avc1) from VideoEncoder and Opus from AudioEncoder", truncate(list, 80), why)
	}
	if len(list) > maxMimeLen {
		return nil, unsupported("too long")
	}
	req := &startRequest{Container: ContainerWebCodecs}
	if perr := parseCodecList(req, strings.ToLower(list), unsupported); perr != nil {
		return nil, perr
	}
	if (req.Video != media.CodecUnknown && req.Video != media.CodecH264) || (req.Audio != media.CodecUnknown && req.Audio != media.CodecOpus) {
		return nil, unsupported("the webcodecs ingest takes H.264 and Opus")
	}
	return req, nil
}

// parseCodecList reads a comma-separated list of codec names into req.
func parseCodecList(req *startRequest, codecList string, unsupported func(string) *protoError) *protoError {
	if strings.TrimSpace(codecList) == "" {
		return unsupported("it does not name its codecs")
	}
	for _, c := range strings.Split(codecList, ",") {
		c = strings.TrimSpace(c)
		if !codecToken.MatchString(c) {
			return unsupported("a codec name is malformed")
		}
		var codec media.Codec
		switch {
		case c == "h264" || strings.HasPrefix(c, "avc1") || strings.HasPrefix(c, "avc3"):
			codec = media.CodecH264
		case c == "vp8":
			codec = media.CodecVP8
		case c == "vp9" || strings.HasPrefix(c, "vp09"):
			codec = media.CodecVP9
		case c == "av1" || strings.HasPrefix(c, "av01"):
			codec = media.CodecAV1
		case c == "opus":
			codec = media.CodecOpus
		case c == "mp4a.40.2" || c == "mp4a.40.5" || c == "mp4a.40.29" || c == "aac":
			codec = media.CodecAAC
		default:
			return unsupported(fmt.Sprintf("codec %q is not supported", c))
		}
		if codec.IsVideo() {
			if req.Video != media.CodecUnknown {
				return unsupported("it names two video codecs")
			}
			req.Video = codec
		} else {
			if req.Audio != media.CodecUnknown {
				return unsupported("it names two audio codecs")
			}
			req.Audio = codec
		}
	}
	if req.Video == media.CodecUnknown && req.Audio == media.CodecUnknown {
		return unsupported("it has neither audio nor video")
	}
	return nil
}

func names(known map[string]bool) string {
	l := make([]string, 0, len(known))
	for k := range known {
		l = append(l, k)
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}

// truncate cuts what a client sent to at most n bytes, at a character
// boundary, and marks the cut. Invalid UTF-8 becomes U+FFFD, so that the
// result can go into a sentence, a JSON message and a log line.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Server messages (docs/protocol.md).

type readyMessage struct {
	Type         string   `json:"type"`
	Version      int      `json:"version"`
	Session      string   `json:"session"`
	Destinations []string `json:"destinations"`
	Video        string   `json:"video,omitempty"`
	Audio        string   `json:"audio,omitempty"`
	ResumeToken  string   `json:"resume_token,omitempty"`
	ResumeMS     int64    `json:"resume_ms"`
	Resumed      bool     `json:"resumed,omitempty"`
}

type statsMessage struct {
	Type         string             `json:"type"`
	UptimeMS     int64              `json:"uptime_ms"`
	BytesIn      uint64             `json:"bytes_in"`
	BitrateIn    uint64             `json:"bitrate_in"`
	Destinations []destinationStats `json:"destinations"`
}

type destinationStats struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	BytesOut   uint64 `json:"bytes_out"`
	BitrateOut uint64 `json:"bitrate_out"`
	Dropped    uint64 `json:"dropped,omitempty"`
	Queued     int64  `json:"queued_bytes"`
	QueuedMS   int64  `json:"queued_ms"`
	DelayMS    int64  `json:"delay_ms"`
	DelayMaxMS int64  `json:"delay_max_ms"`
}

type pongMessage struct {
	Type string      `json:"type"`
	ID   json.Number `json:"id"`
}

type bitrateMessage struct {
	Type string `json:"type"`
	BPS  uint64 `json:"bps"` // 0: no limit
}

type destinationMessage struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

type keyframeMessage struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// drainingMessage: livegate is stopping; the broadcast goes on for
// DeadlineMS more milliseconds at most, then ends with shutting_down.
type drainingMessage struct {
	Type       string `json:"type"`
	DeadlineMS int64  `json:"deadline_ms"`
}

type errorMessage struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}
