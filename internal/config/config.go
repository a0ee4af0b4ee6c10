// Package config holds livegate's configuration: the YAML schema, its defaults, and the
// validation that turns a mistake in the file into a message an operator can act on.
//
// The operator's reference is docs/config.example.yaml. Every field is optional: a field that
// is absent (or null) takes its default, and a field that is given is checked, so that a
// typo never silently becomes "unlimited" or "the default". Unknown fields are refused.
package config

import (
	"crypto/tls"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"
)

// Config is the whole configuration of one livegate process.
type Config struct {
	// Listen is the HTTP listen address (host:port). An empty host means all interfaces.
	// It serves HTTPS when TLS is enabled and TLS.Listen is empty.
	Listen string
	// TLS makes livegate serve HTTPS.
	TLS TLS
	// Auth says who may publish.
	Auth Auth
	// Admin protects the admin API (/api/v1/admin/); without a token hash the API is off.
	Admin  Admin
	Log    Log
	FFmpeg FFmpeg
	// Receiver is the built-in RTMP receiver.
	Receiver Receiver
	Limits   Limits
	// ShutdownGrace is how long livegate lets live broadcasts go on after SIGTERM or
	// Ctrl-C (the drain) before it ends them; 0: it ends them at once.
	ShutdownGrace time.Duration
	Encode        Encode
	// Profiles are the output sizes livegate can resize a broadcast to, by name. A
	// destination may force one (Destination.Profile) or let the streamer pick among some
	// (Destination.Profiles). Each Profile's Name equals its key.
	Profiles map[string]Profile
	// Destinations are the places a broadcast can go, by name. The browser only ever
	// sends these names, never a URL. Each Destination's Name equals its key.
	Destinations map[string]Destination
}

// TLS configures HTTPS. With neither a certificate (Cert and Key) nor SelfSigned, livegate
// serves plain HTTP on Config.Listen.
type TLS struct {
	// Cert and Key are the absolute paths of two PEM files: the certificate chain (the
	// server's certificate first, then its intermediates, as in Let's Encrypt's
	// fullchain.pem) and its private key (unencrypted).
	Cert string
	Key  string
	// SelfSigned makes livegate generate a certificate at start and keep it in memory, for
	// a LAN; its fingerprint changes at each start. Not together with Cert and Key.
	SelfSigned bool
	// Listen, when set, is the HTTPS listen address (host:port); Config.Listen then serves
	// plain HTTP only to redirect to it. Empty: HTTPS is served on Config.Listen.
	Listen string
	// Certificate is Cert and Key as Load and Parse read and checked them (LoadKeyPair);
	// nil when they are not set.
	Certificate *tls.Certificate
}

// Enabled tells whether livegate serves HTTPS.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.SelfSigned }

// Auth says who may publish. With no Tokens and no SigningKeys, publishing needs no token
// (Anonymous), and then every listen address must be a loopback one unless
// AllowAnonymous: anyone on this machine may publish, and nobody else unless the operator
// says so.
type Auth struct {
	// Tokens are the static tokens, each kept as its SHA-256 only.
	Tokens []Token
	// SigningKeys verify the signed tokens that a web application's backend mints for its
	// users (auth.Sign; livegate token sign).
	SigningKeys []SigningKey
	// AllowAnonymous lets anyone who reaches livegate publish without a token, on any
	// listen address. Not together with Tokens or SigningKeys.
	AllowAnonymous bool
	// AllowedOrigins are the other web origins whose pages may publish, as
	// scheme://host[:port] where the host may hold path.Match wildcards
	// (https://*.example.com). The page's own origin always may.
	AllowedOrigins []string
}

// Anonymous tells whether publishing needs no token: no tokens and no signing keys are
// configured.
func (a Auth) Anonymous() bool { return len(a.Tokens) == 0 && len(a.SigningKeys) == 0 }

// Token is a static token: a secret the operator gives a streamer or an application,
// which livegate knows only by its hash.
type Token struct {
	// Name names the token in logs (the broadcast's subject); unique.
	Name string
	// Hash is "sha256:" and the 64 hex digits of the token's SHA-256 (auth.HashToken),
	// as livegate token new and livegate token hash print it.
	Hash string
	// Destinations the token may publish to; nil: all.
	Destinations []string
	// Profiles the token may ask for; nil: all. A broadcast that asks for no profile
	// (the video as it is sent) is always allowed.
	Profiles []string
	// MaxBitrate caps the ingest bit rate of the token's broadcasts, bits per second,
	// below Limits.MaxIngestBitrate; 0: only that limit.
	MaxBitrate int
}

// Admin configures the admin API, which lists the live broadcasts and ends one.
type Admin struct {
	// TokenHash is "sha256:" and the 64 hex digits of the admin token's SHA-256, in the
	// form of Token.Hash (livegate token new and livegate token hash print it). Empty: the
	// admin API is off (its routes answer 404).
	TokenHash string
}

// Enabled tells whether the admin API is on.
func (a Admin) Enabled() bool { return a.TokenHash != "" }

// Log configures the process logger.
type Log struct {
	Level  string // debug, info, warn or error
	Format string // text or json
}

// FFmpeg says where the ffmpeg executable is.
type FFmpeg struct {
	// Path is a command name looked up in PATH (like "ffmpeg") or an absolute path.
	// It is not looked up here, so that a configuration can be checked on another machine.
	Path string
}

// Receiver configures the built-in RTMP receiver.
type Receiver struct {
	// Enabled is true unless the file says "enabled: false": the receiver is what makes
	// livegate work on a fresh machine, so it is on by default.
	Enabled bool
	// Listen is the RTMP listen address (host:port); port 0 picks a free port (tests).
	Listen string
}

// Limits bound everything that comes from the network.
type Limits struct {
	MaxSessions           int           // concurrent broadcasts
	MaxSessionsPerAddress int           // concurrent broadcasts from one client IP address; 0: no bound
	MaxSessionLength      time.Duration // longest broadcast; 0: no bound
	MaxIngestBitrate      int           // bits per second from one broadcast, over 5 s; 0: no bound
	MaxMessageBytes       int64         // largest WebSocket message
	FirstMediaTimeout     time.Duration // from connect to the first media bytes
	IdleTimeout           time.Duration // longest gap between media messages
	ResumeWindow          time.Duration // how long a lost broadcast waits for its browser; 0: not at all
}

// Encode configures the encoders, used only for tracks that must be transcoded.
type Encode struct {
	VideoBitrate     int           // bits per second, for VP8/VP9/AV1 -> H.264
	AudioBitrate     int           // bits per second, for Opus -> AAC
	KeyframeInterval time.Duration // longest gap between video key frames
	X264Preset       string        // ultrafast, superfast, veryfast, faster, fast or medium
	AudioSampleRate  int           // 44100 or 48000
}

// Defaults. They are what Default returns and what an absent field becomes.
const (
	defaultListen            = "127.0.0.1:8080"
	defaultLogLevel          = "info"
	defaultLogFormat         = "text"
	defaultFFmpegPath        = "ffmpeg"
	defaultReceiverListen    = "127.0.0.1:1935"
	defaultMaxSessions       = 16
	defaultMaxPerAddress     = 4
	defaultMaxSessionLength  = 12 * time.Hour
	defaultMaxIngestBitrate  = 20_000_000
	defaultMaxMessageBytes   = 4 << 20
	defaultFirstMediaTimeout = 15 * time.Second
	defaultIdleTimeout       = 10 * time.Second
	defaultResumeWindow      = 10 * time.Second
	defaultShutdownGrace     = 10 * time.Second
	defaultVideoBitrate      = 2_500_000
	defaultKeyframeInterval  = 2 * time.Second
	defaultX264Preset        = "veryfast"
	defaultAudioBitrate      = 128_000
	defaultAudioSampleRate   = 48000
	defaultProfileFPS        = 30 // for a profile that gives no fps

	// builtinName names the destination added when the file configures none.
	builtinName        = "local"
	builtinDescription = "Built-in receiver (preview on this server)"
)

// Default returns the configuration used when the file is empty: every field at its
// default, the profiles 1080p, 720p and 480p, and one destination, "local", the built-in
// receiver.
func Default() *Config {
	c := defaultsWithoutDestinations()
	c.Destinations = map[string]Destination{builtinName: builtinDestination()}
	return c
}

func defaultsWithoutDestinations() *Config {
	return &Config{
		Listen: defaultListen,
		Log:    Log{Level: defaultLogLevel, Format: defaultLogFormat},
		FFmpeg: FFmpeg{Path: defaultFFmpegPath},
		Receiver: Receiver{
			Enabled: true,
			Listen:  defaultReceiverListen,
		},
		Limits: Limits{
			MaxSessions:           defaultMaxSessions,
			MaxSessionsPerAddress: defaultMaxPerAddress,
			MaxSessionLength:      defaultMaxSessionLength,
			MaxIngestBitrate:      defaultMaxIngestBitrate,
			MaxMessageBytes:       defaultMaxMessageBytes,
			FirstMediaTimeout:     defaultFirstMediaTimeout,
			IdleTimeout:           defaultIdleTimeout,
			ResumeWindow:          defaultResumeWindow,
		},
		ShutdownGrace: defaultShutdownGrace,
		Encode: Encode{
			VideoBitrate:     defaultVideoBitrate,
			AudioBitrate:     defaultAudioBitrate,
			KeyframeInterval: defaultKeyframeInterval,
			X264Preset:       defaultX264Preset,
			AudioSampleRate:  defaultAudioSampleRate,
		},
		Profiles: defaultProfiles(),
	}
}

// defaultProfiles are the profiles of a file that has no profiles: section.
func defaultProfiles() map[string]Profile {
	return map[string]Profile{
		"1080p": {Name: "1080p", Width: 1920, Height: 1080, FPS: 30, VideoBitrate: 6_000_000, AudioBitrate: 160_000, KeyframeInterval: 2 * time.Second},
		"720p":  {Name: "720p", Width: 1280, Height: 720, FPS: 30, VideoBitrate: 3_000_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
		"480p":  {Name: "480p", Width: 854, Height: 480, FPS: 30, VideoBitrate: 1_200_000, AudioBitrate: 96_000, KeyframeInterval: 2 * time.Second},
	}
}

func builtinDestination() Destination {
	return Destination{Name: builtinName, Builtin: true, Description: builtinDescription}
}

// Parse reads a YAML configuration, fills in the defaults and validates the result.
// Empty input gives Default(). All problems found are reported together (errors.Join),
// one per line, so that the operator can fix them in one go.
//
// Stream keys given with key_env and key_file are read here (and by Load), from the
// environment and the file system, into Destination.Key; so are the signing keys' secrets
// (secret_env, secret_file), into SigningKey.Secret.
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

// Load reads and parses the configuration file at path. Its errors name the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return parse(data, path)
}

// DestinationNames returns the names of the destinations, sorted.
func (c *Config) DestinationNames() []string {
	return slices.Sorted(maps.Keys(c.Destinations))
}
