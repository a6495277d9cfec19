// Package transport is the AMQP side of amqprpc: request/reply over a
// broker, knowing nothing of net/rpc. The root package joins it to net/rpc's
// codec interfaces.
//
// A [Client] publishes requests to service queues and receives their replies
// on a private reply queue or through direct reply-to, which its user reads
// from the current session ([Client.Replies]); it reports returned
// requests, confirms and the life of its sessions to a [ClientHandler]. A [Server] consumes a service queue with a bounded
// prefetch ([Server.Next]) and publishes replies, acknowledging each request
// after its reply ([Server.Respond]).
//
// A Server with a [ControlConfig] also answers control requests about
// itself on an exclusive queue of its own, on a channel of its own, set up
// again on every session; [Gather] asks such servers and collects their
// answers.
//
// Both keep one session (a connection, or a channel on a borrowed
// connection) up at a time through the same supervisor: connect with
// [Config.Dial] and [Backoff], set up, watch the broker's notifications, and
// after a loss do it again. Publishing never holds a lock across a network
// write, and with confirms on ([Config.Confirm]) confirms are tracked with
// amqp091-go's deferred confirmations, so no publish can make amqp091-go
// give up on a notification.
package transport
