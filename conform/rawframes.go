package conform

// AMQP 0-9-1 frames for the raw publisher (rawpublish.go): method
// arguments and content headers built, frames written and read.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

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

// frame writes one frame of type typ on channel.
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

// method writes a method frame: id, then its arguments a.
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
