package webm

import (
	"fmt"
	"math/bits"
)

// Element IDs (RFC 8794 and RFC 9559), written with their length marker as
// they appear in the stream.
const (
	idEBML               = 0x1A45DFA3
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idVoid               = 0xEC
	idCRC32              = 0xBF
	idSegment            = 0x18538067
	idSeekHead           = 0x114D9B74
	idInfo               = 0x1549A966
	idTimestampScale     = 0x2AD7B1
	idTracks             = 0x1654AE6B
	idTrackEntry         = 0xAE
	idTrackNumber        = 0xD7
	idCodecID            = 0x86
	idCodecPrivate       = 0x63A2
	idDefaultDuration    = 0x23E383
	idCodecDelay         = 0x56AA
	idContentEncodings   = 0x6D80
	idVideo              = 0xE0
	idPixelWidth         = 0xB0
	idPixelHeight        = 0xBA
	idAudio              = 0xE1
	idSamplingFrequency  = 0xB5
	idChannels           = 0x9F
	idCluster            = 0x1F43B675
	idTimestamp          = 0xE7
	idSimpleBlock        = 0xA3
	idBlockGroup         = 0xA0
	idBlock              = 0xA1
	idReferenceBlock     = 0xFB
	idCues               = 0x1C53BB6B
	idTags               = 0x1254C367
	idChapters           = 0x1043A770
	idAttachments        = 0x1941A469
	unknownSize          = -1
	maxIDLength          = 4
	maxSizeLength        = 8
	maxEBMLHeaderSize    = 4096
	maxCodecIDLength     = 256
	maxStringElementSize = 4096
)

var elementNames = map[uint32]string{
	idEBML:            "EBML header",
	idDocType:         "DocType",
	idVoid:            "Void",
	idCRC32:           "CRC-32",
	idSegment:         "Segment",
	idSeekHead:        "SeekHead",
	idInfo:            "Info",
	idTimestampScale:  "TimestampScale",
	idTracks:          "Tracks",
	idTrackEntry:      "TrackEntry",
	idTrackNumber:     "TrackNumber",
	idCodecID:         "CodecID",
	idCodecPrivate:    "CodecPrivate",
	idDefaultDuration: "DefaultDuration",
	idCodecDelay:      "CodecDelay",
	idVideo:           "Video",
	idPixelWidth:      "PixelWidth",
	idPixelHeight:     "PixelHeight",
	idAudio:           "Audio",
	idChannels:        "Channels",
	idCluster:         "Cluster",
	idTimestamp:       "Timestamp",
	idSimpleBlock:     "SimpleBlock",
	idBlockGroup:      "BlockGroup",
	idBlock:           "Block",
	idReferenceBlock:  "ReferenceBlock",
	idCues:            "Cues",
	idTags:            "Tags",
	idChapters:        "Chapters",
	idAttachments:     "Attachments",

	idSamplingFrequency: "SamplingFrequency",
	idContentEncodings:  "ContentEncodings",
}

// elementName names an element for error messages.
func elementName(id uint32) string {
	if n, ok := elementNames[id]; ok {
		return n
	}
	return fmt.Sprintf("element 0x%X", id)
}

// isSegmentLevel tells whether an element belongs directly under Segment
// (or above it): inside a Cluster of unknown size, such an element ends the
// Cluster (RFC 9559, 6.2). Any other element, known or not, is taken as
// the Cluster's child.
func isSegmentLevel(id uint32) bool {
	switch id {
	case idEBML, idSegment, idSeekHead, idInfo, idTracks, idCluster,
		idCues, idTags, idChapters, idAttachments:
		return true
	}
	return false
}

// vintLength returns the length of a variable-size integer from its first
// byte (RFC 8794, 4), or 0 when the byte starts no valid one.
func vintLength(first byte) int {
	if first == 0 {
		return 0
	}
	return bits.LeadingZeros8(first) + 1
}

// parseVint reads a variable-size integer from b. With keepMarker (element
// IDs) the length marker stays in the value. ok is false when b is too
// short or starts no valid integer.
func parseVint(b []byte, keepMarker bool) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	n = vintLength(b[0])
	if n == 0 || n > len(b) {
		return 0, 0, false
	}
	v = uint64(b[0])
	if !keepMarker {
		v &= 0xff >> n
	}
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, true
}

// isAllOnes tells whether the value bits of an n-byte size are all set:
// the reserved value meaning "unknown size".
func isAllOnes(v uint64, n int) bool {
	return v == 1<<(7*n)-1
}
