package conform

// A minimal AMQP 0-9-1 publisher, for the one thing amqp091-go cannot do:
// send a property that is present but empty. amqp091-go leaves an empty
// string property out of the content header, so with it "absent" and
// "empty" are the same; pika, amqplib and others send an empty one, and
// the broker passes it on as sent. The conformance checks need both.
//
// It opens a connection of its own, publishes one message with publisher
// confirms and mandatory set, waits for the broker's ack, and closes.

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Content header property flags (AMQP 0-9-1, basic class), high bit first.
const (
	propContentType   = 0x8000
	propCorrelationID = 0x0400
	propReplyTo       = 0x0200
	propType          = 0x0020
)

// rawProp is a short-string property that is sent even when empty.
type rawProp struct {
	flag  uint16
	value string
}

// rawPublish publishes body to the default exchange with routing key
// queue and exactly the properties props, mandatory, within timeout.
func rawPublish(url, queue string, props []rawProp, body []byte, timeout time.Duration) error {
	return rawPublishTo(url, queue, true, props, body, timeout)
}

// rawPublishTo is rawPublish with mandatory set or not: a reply through
// direct reply-to is published without it, as older brokers return it.
func rawPublishTo(url, queue string, mandatory bool, props []rawProp, body []byte, timeout time.Duration) error {
	uri, err := amqp.ParseURI(url)
	if err != nil {
		return err
	}
	conn, err := dialRaw(uri, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	c := &rawConn{w: &frameWriter{w: conn}, r: &frameReader{r: bufio.NewReader(conn)}}
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	frameMax, err := c.open(uri)
	if err != nil {
		return err
	}
	defer c.close() // a polite close; the publish's outcome is already known
	if err := c.openConfirmChannel(); err != nil {
		return err
	}
	if err := c.publish(queue, mandatory, props, body, frameMax); err != nil {
		return err
	}
	return c.awaitConfirm(queue)
}

// dialRaw opens the TCP connection, with TLS for an amqps URI, to the
// broker uri names.
func dialRaw(uri amqp.URI, timeout time.Duration) (net.Conn, error) {
	addr := net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
	dialer := &net.Dialer{Timeout: timeout}
	if uri.Scheme == "amqps" {
		return tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{ServerName: uri.Host})
	}
	return dialer.Dial("tcp", addr)
}

// rawConn is the raw publisher's AMQP connection: the frames it writes
// and the frames it reads.
type rawConn struct {
	w *frameWriter
	r *frameReader
}

// open runs the connection handshake after the protocol header: it logs
// in with PLAIN as uri's user, agrees on a frame size without heartbeats,
// opens uri's vhost, and returns the frame size agreed.
func (c *rawConn) open(uri amqp.URI) (uint32, error) {
	if _, err := c.r.expect(connStart); err != nil {
		return 0, err
	}
	var a args
	a.table(map[string]string{"product": "amqprpc conform", "connection_name": "amqprpc conform (empty properties)"})
	a.shortstr("PLAIN")
	a.longstr("\x00" + uri.Username + "\x00" + uri.Password)
	a.shortstr("en_US")
	c.w.method(0, connStartOk, a)
	tune, err := c.r.expect(connTune)
	if err != nil {
		return 0, err
	}
	if len(tune) < 8 {
		return 0, errors.New("short connection.tune")
	}
	frameMax := binary.BigEndian.Uint32(tune[2:6])
	if frameMax == 0 || frameMax > 131072 {
		frameMax = 131072
	}
	a = args{}
	a.short(1)
	a.long(frameMax)
	a.short(0) // no heartbeats: the connection lives for one publish
	c.w.method(0, connTuneOk, a)
	a = args{}
	a.shortstr(uri.Vhost)
	a.shortstr("")
	a.octet(0)
	c.w.method(0, connOpen, a)
	if _, err := c.r.expect(connOpenOk); err != nil {
		return 0, err
	}
	return frameMax, nil
}

// close closes the connection, waiting for the broker's close-ok unless
// writing failed.
func (c *rawConn) close() {
	a := args{}
	a.short(200)
	a.shortstr("")
	a.short(0)
	a.short(0)
	c.w.method(0, connClose, a)
	if c.w.err == nil {
		_, _ = c.r.expect(connCloseOk)
	}
}

// openConfirmChannel opens channel 1 and puts it in confirm mode.
func (c *rawConn) openConfirmChannel() error {
	a := args{}
	a.shortstr("")
	c.w.method(1, chanOpen, a)
	if _, err := c.r.expect(chanOpenOk); err != nil {
		return err
	}
	a = args{}
	a.octet(0)
	c.w.method(1, confirmSelect, a)
	_, err := c.r.expect(confirmOk)
	return err
}

// publish writes a basic.publish, mandatory or not, of body with props to queue
// through the default exchange on channel 1, in body frames of at most
// frameMax bytes, and returns the first write error.
func (c *rawConn) publish(queue string, mandatory bool, props []rawProp, body []byte, frameMax uint32) error {
	a := args{}
	a.short(0)
	a.shortstr("")
	a.shortstr(queue)
	var flags byte
	if mandatory {
		flags = 1
	}
	a.octet(flags)
	c.w.method(1, basicPublish, a)
	c.w.header(1, uint64(len(body)), props)
	for rest := body; len(rest) > 0; {
		n := min(len(rest), int(frameMax)-8)
		c.w.frame(frameBody, 1, rest[:n])
		rest = rest[n:]
	}
	return c.w.err
}

// awaitConfirm waits for the broker's confirm of the publish to queue: nil
// for an ack, an error for a nack or a return.
func (c *rawConn) awaitConfirm(queue string) error {
	for {
		id, payload, err := c.r.method()
		if err != nil {
			return err
		}
		switch id {
		case basicAck:
			return nil
		case basicNack:
			return errors.New("the broker refused the request (basic.nack)")
		case basicReturn:
			return fmt.Errorf("the broker returned the request: no queue %q (basic.return %s)", queue, closeReason(payload))
		}
	}
}
