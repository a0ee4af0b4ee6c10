package media

// Demuxer reads a container byte stream into packets. Implementations read
// from an io.Reader, so the way the stream was cut into messages cannot
// change what comes out.
type Demuxer interface {
	// Tracks reads until every track is known and returns them; media read
	// meanwhile is kept for ReadPacket.
	Tracks() ([]*Track, error)
	// ReadPacket returns the next packet, in stream order; io.EOF at a
	// clean end.
	ReadPacket() (*Packet, error)
}
