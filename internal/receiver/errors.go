package receiver

import "errors"

// ErrNoStream is returned by Watch when no active stream has the path asked
// for.
var ErrNoStream = errors.New("no active stream with that path on the built-in receiver")

// ErrTooManyWatchers is returned by Watch when the stream already has
// Receiver.MaxWatchers watchers.
var ErrTooManyWatchers = errors.New("too many people are watching this stream back already")

// ErrNotWatchable is returned by Watch for a stream with neither H.264 video
// nor AAC audio: nothing a browser could play back.
var ErrNotWatchable = errors.New("the stream has no H.264 video or AAC audio to watch back")

// ErrStreamEnded is a Watcher's Err when the stream it watched ended.
var ErrStreamEnded = errors.New("the stream ended")

// ErrFormatChanged is a Watcher's Err when the publisher sent new H.264
// parameter sets (another size or profile): the watcher's tracks no longer
// describe the packets, so the watch ends and a new one starts afresh.
var ErrFormatChanged = errors.New("the stream's video format changed")

// ErrWatchClosed is a Watcher's Err after its Close.
var ErrWatchClosed = errors.New("watch closed")
