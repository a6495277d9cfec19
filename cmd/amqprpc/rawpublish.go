package main

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
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
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

// AMQP frame types and the methods the publisher uses, as class<<16|method.
const (
	frameMethod = 1
	frameHeader = 2
	frameBody   = 3
	frameEnd    = 0xCE

	connStart     = 10<<16 | 10
	connStartOk   = 10<<16 | 11
	connTune      = 10<<16 | 30
	connTuneOk    = 10<<16 | 31
	connOpen      = 10<<16 | 40
	connOpenOk    = 10<<16 | 41
	connClose     = 10<<16 | 50
	connCloseOk   = 10<<16 | 51
	chanOpen      = 20<<16 | 10
	chanOpenOk    = 20<<16 | 11
	chanClose     = 20<<16 | 40
	confirmSelect = 85<<16 | 10
	confirmOk     = 85<<16 | 11
	basicPublish  = 60<<16 | 40
	basicReturn   = 60<<16 | 50
	basicAck      = 60<<16 | 80
	basicNack     = 60<<16 | 120
)

// rawPublish publishes body to the default exchange with routing key
// queue and exactly the properties props, within timeout.
func rawPublish(url, queue string, props []rawProp, body []byte, timeout time.Duration) (err error) {
	uri, err := amqp.ParseURI(url)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
	dialer := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	if uri.Scheme == "amqps" {
		conn, err = tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{ServerName: uri.Host})
	} else {
		conn, err = dialer.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	w := &frameWriter{w: conn}
	r := &frameReader{r: bufio.NewReader(conn)}
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}

	if _, err := r.expect(connStart); err != nil {
		return err
	}
	var a args
	a.table(map[string]string{"product": "amqprpc conform", "connection_name": "amqprpc conform (empty properties)"})
	a.shortstr("PLAIN")
	a.longstr("\x00" + uri.Username + "\x00" + uri.Password)
	a.shortstr("en_US")
	w.method(0, connStartOk, a)
	tune, err := r.expect(connTune)
	if err != nil {
		return err
	}
	if len(tune) < 8 {
		return errors.New("short connection.tune")
	}
	frameMax := binary.BigEndian.Uint32(tune[2:6])
	if frameMax == 0 || frameMax > 131072 {
		frameMax = 131072
	}
	a = args{}
	a.short(1)
	a.long(frameMax)
	a.short(0) // no heartbeats: the connection lives for one publish
	w.method(0, connTuneOk, a)
	a = args{}
	a.shortstr(uri.Vhost)
	a.shortstr("")
	a.octet(0)
	w.method(0, connOpen, a)
	if _, err := r.expect(connOpenOk); err != nil {
		return err
	}
	defer func() {
		// A polite close; the publish's outcome is already known.
		a := args{}
		a.short(200)
		a.shortstr("")
		a.short(0)
		a.short(0)
		w.method(0, connClose, a)
		if w.err == nil {
			_, _ = r.expect(connCloseOk)
		}
	}()

	a = args{}
	a.shortstr("")
	w.method(1, chanOpen, a)
	if _, err := r.expect(chanOpenOk); err != nil {
		return err
	}
	a = args{}
	a.octet(0)
	w.method(1, confirmSelect, a)
	if _, err := r.expect(confirmOk); err != nil {
		return err
	}

	a = args{}
	a.short(0)
	a.shortstr("")
	a.shortstr(queue)
	a.octet(1) // mandatory
	w.method(1, basicPublish, a)
	w.header(1, uint64(len(body)), props)
	for rest := body; len(rest) > 0; {
		n := min(len(rest), int(frameMax)-8)
		w.frame(frameBody, 1, rest[:n])
		rest = rest[n:]
	}
	if w.err != nil {
		return w.err
	}
	for {
		id, payload, err := r.method()
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

// closeReason reads the reply code and text that start a connection.close,
// channel.close or basic.return.
func closeReason(payload []byte) string {
	if len(payload) < 3 || len(payload) < 3+int(payload[2]) {
		return "(unreadable)"
	}
	return fmt.Sprintf("%d %s", binary.BigEndian.Uint16(payload), payload[3:3+int(payload[2])])
}

// args builds a method's arguments.
type args struct{ bytes.Buffer }

func (a *args) octet(v byte)   { a.WriteByte(v) }
func (a *args) short(v uint16) { _ = binary.Write(a, binary.BigEndian, v) }
func (a *args) long(v uint32)  { _ = binary.Write(a, binary.BigEndian, v) }
func (a *args) shortstr(s string) {
	a.WriteByte(byte(len(s)))
	a.WriteString(s)
}
func (a *args) longstr(s string) {
	a.long(uint32(len(s)))
	a.WriteString(s)
}

// table writes a field table of long-string values, in key order.
func (a *args) table(t map[string]string) {
	var b args
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.shortstr(k)
		b.octet('S')
		b.longstr(t[k])
	}
	a.long(uint32(b.Len()))
	a.Write(b.Bytes())
}

// frameWriter writes frames and keeps the first error.
type frameWriter struct {
	w   io.Writer
	err error
}

func (fw *frameWriter) frame(typ byte, channel uint16, payload []byte) {
	if fw.err != nil {
		return
	}
	var b bytes.Buffer
	b.WriteByte(typ)
	_ = binary.Write(&b, binary.BigEndian, channel)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(payload)))
	b.Write(payload)
	b.WriteByte(frameEnd)
	_, fw.err = fw.w.Write(b.Bytes())
}

func (fw *frameWriter) method(channel uint16, id uint32, a args) {
	var b args
	b.long(id)
	b.Write(a.Bytes())
	fw.frame(frameMethod, channel, b.Bytes())
}

// header writes a basic content header holding exactly props.
func (fw *frameWriter) header(channel uint16, size uint64, props []rawProp) {
	props = slices.Clone(props)
	slices.SortFunc(props, func(x, y rawProp) int { return int(y.flag) - int(x.flag) }) // high bit first
	var flags uint16
	var list args
	for _, p := range props {
		flags |= p.flag
		list.shortstr(p.value)
	}
	var b args
	b.short(60) // basic
	b.short(0)  // weight
	_ = binary.Write(&b, binary.BigEndian, size)
	b.short(flags)
	b.Write(list.Bytes())
	fw.frame(frameHeader, channel, b.Bytes())
}

// frameReader reads frames.
type frameReader struct{ r *bufio.Reader }

// method returns the next method frame's id and arguments, skipping
// heartbeats and content frames, and failing on a close by the broker.
func (fr *frameReader) method() (uint32, []byte, error) {
	for {
		var h [7]byte
		if _, err := io.ReadFull(fr.r, h[:]); err != nil {
			return 0, nil, err
		}
		if string(h[:4]) == "AMQP" {
			return 0, nil, errors.New("the broker does not speak AMQP 0-9-1")
		}
		size := binary.BigEndian.Uint32(h[3:7])
		if size > 1<<20 {
			return 0, nil, fmt.Errorf("frame of %d bytes", size)
		}
		payload := make([]byte, size+1)
		if _, err := io.ReadFull(fr.r, payload); err != nil {
			return 0, nil, err
		}
		if payload[size] != frameEnd {
			return 0, nil, errors.New("bad frame end")
		}
		if h[0] != frameMethod || size < 4 {
			continue // heartbeat, or the content of a returned message
		}
		id := binary.BigEndian.Uint32(payload)
		payload = payload[4:size]
		switch id {
		case connClose:
			return 0, nil, fmt.Errorf("the broker closed the connection: %s", closeReason(payload))
		case chanClose:
			return 0, nil, fmt.Errorf("the broker closed the channel: %s", closeReason(payload))
		}
		return id, payload, nil
	}
}

// expect reads method frames until one with id arrives.
func (fr *frameReader) expect(id uint32) ([]byte, error) {
	for {
		got, payload, err := fr.method()
		if err != nil {
			return nil, err
		}
		if got == id {
			return payload, nil
		}
	}
}
