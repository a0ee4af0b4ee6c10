package receiver

import (
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// arrival is when a message came off the network, and the bytes received
// on the connection by then.
type arrival struct {
	at    time.Time
	bytes uint64
}

// timedConn notes when each RTMP message arrives, for the arrival delay and
// the bit rate.
//
// gortmplib's Reader reads the first 2 s of messages to learn the tracks,
// then hands them over again from memory, all at once: timing the callbacks
// would say those messages arrived late. So timedConn queues one arrival per
// message it reads, in order, and the receiver's read loop takes one off
// the queue per Reader.Read (which consumes exactly one message, replayed or
// fresh): while the callbacks of a message run, its arrival is at the front.
// Only the connection's goroutine uses it.
type timedConn struct {
	gortmplib.Conn
	queue []arrival
}

func (c *timedConn) Read() (message.Message, error) {
	msg, err := c.Conn.Read()
	if err == nil {
		c.queue = append(c.queue, arrival{at: time.Now(), bytes: c.Conn.BytesReceived()})
	}
	return msg, err
}

// current is the arrival of the message being handed over.
func (c *timedConn) current() arrival {
	if len(c.queue) == 0 {
		return arrival{at: time.Now(), bytes: c.Conn.BytesReceived()}
	}
	return c.queue[0]
}

// consumed drops the arrival of the message Reader.Read just handed over.
func (c *timedConn) consumed() {
	if len(c.queue) > 0 {
		c.queue = c.queue[1:]
	}
}
