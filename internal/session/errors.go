package session

import "errors"

// Errors a session ends with; the ingest maps each to a protocol error code.
var (
	// ErrBadMedia: the encoder could not read the stream the browser sent.
	ErrBadMedia = errors.New("the media stream could not be read as the container and codecs announced")
	// ErrEncoderFailed: the encoder process ended on its own.
	ErrEncoderFailed = errors.New("the encoder stopped unexpectedly")
	// ErrAllDestinationsFailed: no destination of the broadcast is left.
	ErrAllDestinationsFailed = errors.New("every destination of this broadcast failed")
)
