package mediarecorder

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/session"
)

// errStoppedByOperator: the operator ended the broadcast (Handler.Stop).
var errStoppedByOperator = errors.New("the operator ended the broadcast")

// SessionInfo describes a broadcast in progress to the operator (the admin
// API). It never holds a URL, a stream key or a token.
type SessionInfo struct {
	ID string `json:"id"`
	// Remote is the browser's address (host:port), as the server sees it:
	// a reverse proxy's, behind one.
	Remote string `json:"remote"`
	// Subject names who publishes: a static token's name, a signed
	// token's subject, or anonymous.
	Subject string `json:"subject"`
	Ingest  string `json:"ingest"`          // mediarecorder or webcodecs
	Video   string `json:"video,omitempty"` // the codec the browser sends
	Audio   string `json:"audio,omitempty"`
	Profile string `json:"profile,omitempty"`
	// State is live, or resuming while the broadcast waits for its
	// browser to come back after a network loss.
	State     string    `json:"state"`
	Started   time.Time `json:"started"`
	UptimeMS  int64     `json:"uptime_ms"`
	BytesIn   uint64    `json:"bytes_in"`
	BitrateIn uint64    `json:"bitrate_in"` // bits a second over the last second
	// EncoderRestarts counts the times its ffmpeg was started again.
	EncoderRestarts int                  `json:"encoder_restarts"`
	Destinations    []SessionDestination `json:"destinations"`
}

// SessionDestination is one destination of a SessionInfo, by name.
type SessionDestination struct {
	Name        string `json:"name"`
	State       string `json:"state"`
	BytesOut    uint64 `json:"bytes_out"`
	BitrateOut  uint64 `json:"bitrate_out"`
	Dropped     uint64 `json:"dropped"`
	QueuedBytes int64  `json:"queued_bytes"`
	QueuedMS    int64  `json:"queued_ms"`
	DelayMS     int64  `json:"delay_ms"`
	DelayMaxMS  int64  `json:"delay_max_ms"`
}

// Sessions lists the broadcasts in progress, oldest first.
func (h *Handler) Sessions() []SessionInfo {
	h.mu.Lock()
	live := make([]*connSession, 0, len(h.live))
	for _, cs := range h.live {
		live = append(live, cs)
	}
	h.mu.Unlock()
	out := make([]SessionInfo, 0, len(live))
	now := time.Now()
	for _, cs := range live {
		out = append(out, cs.describe(now))
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Stop ends the broadcast id for the operator: the browser is told
// stopped_by_operator, and what is in flight reaches the destinations.
// ended is closed once it has ended; ok is false when no broadcast id is
// in progress.
func (h *Handler) Stop(id string) (ended <-chan struct{}, ok bool) {
	h.mu.Lock()
	cs, ok := h.live[id]
	h.mu.Unlock()
	if !ok {
		return nil, false
	}
	cs.stopOnce.Do(func() { close(cs.stop) })
	cs.log.Info("the operator ends the broadcast")
	return cs.ended, true
}

// register makes the broadcast known to Sessions and Stop.
func (cs *connSession) register(req *startRequest, grant *auth.Grant, profile *session.Profile, started time.Time) {
	info := SessionInfo{ID: cs.id, Remote: cs.remote, Subject: grant.Subject, State: "live", Started: started.UTC()}
	switch req.Container {
	case ContainerWebCodecs:
		info.Ingest = "webcodecs"
	default:
		info.Ingest = "mediarecorder"
	}
	if req.Video != 0 {
		info.Video = req.Video.String()
	}
	if req.Audio != 0 {
		info.Audio = req.Audio.String()
	}
	if profile != nil {
		info.Profile = profile.Name
	}
	cs.infoMu.Lock()
	cs.info = info
	cs.infoMu.Unlock()
	cs.h.mu.Lock()
	cs.h.live[cs.id] = cs
	cs.h.mu.Unlock()
}

func (cs *connSession) unregister() {
	cs.h.mu.Lock()
	delete(cs.h.live, cs.id)
	cs.h.mu.Unlock()
}

// setResuming says whether the broadcast waits for its browser.
func (cs *connSession) setResuming(waiting bool) {
	cs.infoMu.Lock()
	defer cs.infoMu.Unlock()
	if waiting {
		cs.info.State = "resuming"
	} else {
		cs.info.State = "live"
	}
}

// describe is the broadcast's SessionInfo at now.
func (cs *connSession) describe(now time.Time) SessionInfo {
	cs.infoMu.Lock()
	info, last := cs.info, cs.last
	cs.infoMu.Unlock()
	st := cs.sess.Stats()
	info.UptimeMS = now.Sub(info.Started).Milliseconds()
	info.BytesIn = st.BytesIn
	info.EncoderRestarts = st.EncoderRestarts
	rates := map[string]uint64{}
	if last != nil {
		info.BitrateIn = last.BitrateIn
		for _, d := range last.Destinations {
			rates[d.Name] = d.BitrateOut
		}
	}
	info.Destinations = make([]SessionDestination, 0, len(st.Destinations))
	for _, d := range st.Destinations {
		info.Destinations = append(info.Destinations, SessionDestination{
			Name: d.Name, State: string(d.State), BytesOut: d.BytesOut, BitrateOut: rates[d.Name], Dropped: d.Dropped,
			QueuedBytes: d.Queued, QueuedMS: d.QueuedDuration.Milliseconds(),
			DelayMS: d.DelayMedian.Milliseconds(), DelayMaxMS: d.DelayMax.Milliseconds(),
		})
	}
	return info
}
