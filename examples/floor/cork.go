package floor

import (
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// corkConn is a connection whose writes can be held while corked and sent
// in one write when uncorked, so that several frames amqp091-go flushes one
// by one (a reply, its ack) leave in one TCP write. Once closing is set it
// holds nothing, so that closing the connection never waits behind a cork.
type corkConn struct {
	net.Conn
	mu      sync.Mutex // guards the fields below; held across the underlying write, to keep writes in order
	corked  bool
	closing bool
	held    []byte
	writes  int // writes to the underlying connection
}

func (c *corkConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked && !c.closing {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	c.writes++
	return c.Conn.Write(b)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what was held, in one write.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	c.writes++
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	return err
}

// stopCorking writes what is held and holds nothing from now on.
func (c *corkConn) stopCorking() {
	c.mu.Lock()
	c.closing = true
	_ = c.flushLocked()
	c.mu.Unlock()
}

// dialCorkable dials url as amqp.Dial does (its heartbeat, locale and
// connection timeout), through a corkConn.
func dialCorkable(url string) (*amqp.Connection, *corkConn, error) {
	var cc *corkConn
	conn, err := amqp.DialConfig(url, amqp.Config{
		Heartbeat: 10 * time.Second,
		Locale:    "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := amqp.DefaultDial(30*time.Second)(network, addr)
			if err != nil {
				return nil, err
			}
			cc = &corkConn{Conn: c}
			return cc, nil
		},
	})
	return conn, cc, err
}
