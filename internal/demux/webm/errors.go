package webm

import "errors"

// ErrNotMatroska is returned by NewReader when the stream does not start
// with an EBML header whose DocType is "webm" or "matroska".
var ErrNotMatroska = errors.New("not a Matroska/WebM stream")

// ErrInvalid wraps every error about a stream that breaks the format or
// livegate's limits (as opposed to an error of the underlying reader).
var ErrInvalid = errors.New("invalid Matroska/WebM stream")

// ErrTooLarge is returned (wrapped with ErrInvalid) for an element over
// the size limit, so that a corrupt or hostile size never makes the reader
// allocate or wait without bound.
var ErrTooLarge = errors.New("element too large")

// ErrNoUsableTrack is returned (wrapped with ErrInvalid) when the Tracks
// element holds no track in a codec livegate can use.
var ErrNoUsableTrack = errors.New("no track in a codec livegate can use")
