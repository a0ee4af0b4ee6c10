package config

import "errors"

// Errors of Destination.Target about the stream key the streamer gave, to be told apart
// with errors.Is (the server turns them into an answer for the browser). The errors
// Target returns name the destination and never hold the key.
var (
	// ErrNoClientKey: the destination takes its stream key from the streamer
	// (key_from_client: true), and none was given.
	ErrNoClientKey = errors.New("no stream key given")

	// ErrBadClientKey: the stream key the streamer gave does not match what the
	// destination allows (its key_pattern, or letters, digits, _ and -, 8..128 of them).
	ErrBadClientKey = errors.New("stream key does not match the allowed pattern")

	// ErrUnexpectedClientKey: the streamer gave a stream key for a destination that does
	// not take one: its key is the operator's, or it is the built-in receiver.
	ErrUnexpectedClientKey = errors.New("destination does not take a stream key from the client")
)

// keyError is an error of Target about a client's stream key: its message names the
// destination, and it unwraps to one of the errors above.
type keyError struct {
	msg string
	err error
}

func (e *keyError) Error() string { return e.msg }
func (e *keyError) Unwrap() error { return e.err }
