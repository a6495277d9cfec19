// Package transport is the AMQP side of amqprpc: it owns connections and
// channels, declares and consumes queues, publishes messages, drains the
// broker's notifications and reconnects after a loss. It knows nothing of
// net/rpc; the root package joins it to net/rpc's codec interfaces.
//
// A [Client] publishes requests to service queues and receives their replies
// on a private reply queue or through direct reply-to. A [Server] consumes a
// service queue with a bounded prefetch and publishes replies. Both report
// what the broker sends them to a handler of the root package's.
package transport
