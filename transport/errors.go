package transport

import "errors"

// Errors the root package re-exports; their texts are part of the API.
var (
	// ErrClosed is returned by operations on a closed Client or Server.
	ErrClosed = errors.New("amqprpc: closed")
	// ErrNotConnected is returned by Publish while a Client is between
	// connections; the caller may keep the message until SessionReady.
	ErrNotConnected = errors.New("amqprpc: not connected to the broker")
	// ErrConnectionLost wraps the broker's error when a connection or channel
	// ends under a Client or Server.
	ErrConnectionLost = errors.New("amqprpc: connection lost")
	// ErrBlocked is returned by Publish while the broker has blocked the
	// connection (connection.blocked, usually a memory or disk alarm).
	ErrBlocked = errors.New("amqprpc: broker blocked publishing")
	// ErrStopped is returned by Server.Next once Stop has drained the consumer.
	ErrStopped = errors.New("amqprpc: server stopped")
)
