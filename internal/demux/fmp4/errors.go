package fmp4

import "errors"

// ErrNotMP4 is returned by NewReader when the stream does not start with an
// ftyp, styp or moov box.
var ErrNotMP4 = errors.New("not an MP4 stream")

// ErrBoxTooLarge is returned for a top-level box larger than MaxBoxSize:
// this reader holds one whole box in memory at a time.
var ErrBoxTooLarge = errors.New("MP4 box too large")

// ErrNotFragmented is returned when the moov lists samples itself: the
// stream is a progressive MP4, which cannot be read as it arrives.
var ErrNotFragmented = errors.New("not a fragmented MP4")

// ErrNoTracks is returned when the moov has no track in a codec livegate
// reads.
var ErrNoTracks = errors.New("no track with a supported codec")

// ErrParamsChanged is returned when a second moov differs from the first:
// the tracks are shared with the publishers, so they are never changed in
// place.
var ErrParamsChanged = errors.New("a second moov changes the tracks")
