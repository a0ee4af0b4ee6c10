package mediarecorder

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/session"
)

func TestResolve(t *testing.T) {
	keyRE := regexp.MustCompile(`^[A-Za-z0-9_-]{8,128}$`)
	withKey := func(base string) func(string) (*url.URL, error) {
		return func(key string) (*url.URL, error) {
			if !keyRE.MatchString(key) {
				return nil, errors.New(`stream key for "twitch" does not match the allowed pattern`)
			}
			return url.Parse(base + "#" + key)
		}
	}
	yt, _ := url.Parse("rtmps://a.rtmps.youtube.com:443/live2#operatorkey")
	h := &Handler{
		Destinations: map[string]Destination{
			"youtube": {Name: "youtube", Target: fixed(yt), Profiles: []string{"720p", "480p"}},
			"twitch":  {Name: "twitch", Target: withKey("rtmps://live.twitch.tv:443/app"), KeyFromClient: true},
			"fb":      {Name: "fb", Target: fixed(yt), Profile: "720p"},
			"small":   {Name: "small", Target: fixed(yt), Profile: "480p"},
		},
		Profiles: map[string]session.Profile{
			"720p": {Name: "720p", Width: 1280, Height: 720, FPS: 30, VideoBitrate: 3_000_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
			"480p": {Name: "480p", Width: 854, Height: 480, FPS: 30, VideoBitrate: 1_200_000, AudioBitrate: 96_000, KeyframeInterval: 2 * time.Second},
		},
	}
	for _, ca := range []struct {
		name        string
		names       []string
		profile     string
		keys        map[string]string
		wantProfile string // "" = none
		wantCode    string
		wantURL     string // of the first destination
	}{
		{name: "as it comes", names: []string{"youtube"}, wantURL: "rtmps://a.rtmps.youtube.com:443/live2#operatorkey"},
		{name: "allowed profile", names: []string{"youtube"}, profile: "480p", wantProfile: "480p"},
		{name: "profile not offered", names: []string{"twitch"}, profile: "720p", keys: map[string]string{"twitch": "live_12345678"}, wantCode: "profile_not_allowed"},
		{name: "unknown profile", names: []string{"youtube"}, profile: "4k", wantCode: "unknown_profile"},
		{name: "forced profile", names: []string{"fb"}, wantProfile: "720p"},
		{name: "forced profile asked", names: []string{"fb"}, profile: "720p", wantProfile: "720p"},
		{name: "forced profile, other asked", names: []string{"fb"}, profile: "480p", wantCode: "profile_not_allowed"},
		{name: "two forced profiles", names: []string{"fb", "small"}, wantCode: "profile_conflict"},
		{name: "client key", names: []string{"twitch"}, keys: map[string]string{"twitch": "live_12345678"}, wantURL: "rtmps://live.twitch.tv:443/app#live_12345678"},
		{name: "client key missing", names: []string{"twitch"}, wantCode: "missing_key"},
		{name: "client key with a slash", names: []string{"twitch"}, keys: map[string]string{"twitch": "abc/defghijk"}, wantCode: "bad_key"},
		{name: "client key with a query", names: []string{"twitch"}, keys: map[string]string{"twitch": "abcdefgh?x=1"}, wantCode: "bad_key"},
		{name: "client key with a newline", names: []string{"twitch"}, keys: map[string]string{"twitch": "abcdefgh\nrtmp://evil"}, wantCode: "bad_key"},
		{name: "key for the operator's destination", names: []string{"youtube"}, keys: map[string]string{"youtube": "mine12345"}, wantCode: "bad_key"},
		{name: "key for a destination not chosen", names: []string{"youtube"}, keys: map[string]string{"twitch": "live_12345678"}, wantCode: "bad_key"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			dests, p, perr := h.resolve(ca.names, ca.profile, ca.keys)
			if ca.wantCode != "" {
				if perr == nil || perr.Code != ca.wantCode {
					t.Fatalf("got %v, want %s", perr, ca.wantCode)
				}
				for _, k := range ca.keys {
					if strings.Contains(perr.Message, k) {
						t.Errorf("the error repeats the key: %s", perr.Message)
					}
				}
				return
			}
			if perr != nil {
				t.Fatal(perr)
			}
			if got := ""; p != nil {
				got = p.Name
				if got != ca.wantProfile {
					t.Errorf("profile %q, want %q", got, ca.wantProfile)
				}
			} else if ca.wantProfile != "" {
				t.Errorf("no profile, want %q", ca.wantProfile)
			}
			if ca.wantURL != "" && dests[0].URL.String() != ca.wantURL {
				t.Errorf("URL %s, want %s", dests[0].URL, ca.wantURL)
			}
		})
	}
}
