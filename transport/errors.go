package transport

import (
	"errors"
	"fmt"
)

// Errors of the transport; the root package re-exports those a net/rpc
// caller can meet, and their texts are part of its API.
var (
	// ErrClosed is returned by operations on a closed Client or Server.
	ErrClosed = errors.New("amqprpc: closed")
	// ErrNotConnected is returned by Client.Publish and Server.Respond
	// between connections; a Client's caller may keep the message and
	// publish it again once ClientHandler.SessionReady says so.
	ErrNotConnected = errors.New("amqprpc: not connected to the broker")
	// ErrConnectionLost wraps the broker's error when a connection or channel
	// ends under a Client or Server.
	ErrConnectionLost = errors.New("amqprpc: connection lost")
	// ErrBlocked is returned by Client.Publish while the broker has blocked
	// the connection (connection.blocked, usually a memory or disk alarm).
	ErrBlocked = errors.New("amqprpc: broker blocked publishing")
	// ErrUnencodable is returned by Client.Publish for a message AMQP
	// cannot carry: a property or a header name over 255 bytes, a header
	// value of a type an AMQP table cannot hold, or properties and headers
	// larger than a frame. Nothing was written; the connection is fine.
	ErrUnencodable = errors.New("amqprpc: message not encodable in AMQP")
	// ErrNoURL is returned for a Client or Server given neither a
	// connection nor a way to dial one, and by the root package's dialer
	// given no URL.
	ErrNoURL = errors.New("amqprpc: no broker URL")
)

// errStopped is returned by Server.Next once Stop has drained the consumer.
var errStopped = errors.New("amqprpc: server stopped")

// errorf wraps err with context, as every error of this package does.
func errorf(format string, args ...any) error {
	return fmt.Errorf("amqprpc: "+format, args...)
}
