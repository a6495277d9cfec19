/*
Package amqprpc carries the standard library's net/rpc over RabbitMQ.

It implements [rpc.ClientCodec] and [rpc.ServerCodec] on AMQP 0-9-1, so code
written for net/rpc moves from TCP to a broker by changing one line:
rpc.Dial("tcp", addr) becomes [Dial](url, queue), and rpc.Accept(listener)
becomes [Serve](ctx, nil, url, queue). Services registered with rpc.Register
and calls made with client.Call and client.Go stay as they are.

A server, with net/rpc's own Arith example:

	type Args struct{ A, B int }

	type Arith int

	func (t *Arith) Multiply(args *Args, reply *int) error {
		*reply = args.A * args.B
		return nil
	}

	func main() {
		rpc.Register(new(Arith))
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		// Consumes the queue "arith" until ctx ends, then finishes the calls
		// in flight (within WithShutdownGrace, 5 s by default) and returns.
		if err := amqprpc.Serve(ctx, nil, "amqp://guest:guest@localhost:5672/", "arith"); err != nil {
			log.Fatal(err)
		}
	}

A client:

	client, err := amqprpc.Dial("amqp://guest:guest@localhost:5672/", "arith")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var product int
	err = client.Call("Arith.Multiply", &Args{7, 8}, &product)

A request is an AMQP message on the service queue: its type property names
the method, correlation_id names the call, reply_to names the queue for the
answer, and the body is the argument alone, in gob or JSON by content_type.
Any AMQP client in any language can call or serve; docs/PROTOCOL.md in the
repository is the full contract.

Several servers can consume one queue: the broker spreads the calls among
them, and [WithPrefetch] bounds how many each runs at once. A server
acknowledges a request only after publishing its reply, so a request whose
server dies mid-call goes to another one: delivery is at least once, and a
service must tolerate running a request twice. A server with a reply store
([WithReplyStore]; [NewMemoryStore], or the module redisstore for every
instance of a service) answers a request it answered before, by message_id,
with the same reply instead of running it again.

Per-call failures reach the caller as an [rpc.ServerError] and leave the
client usable: a timeout ([WithCallTimeout]), a request the broker returned
because its queue does not exist, a lost connection, a malformed reply.
[Cause] turns such an error back into one that errors.Is matches against the
sentinels, such as [ErrTimeout] and [ErrNoQueue]; a failure whose request
never left the client also matches [ErrNotSent], so the method cannot have
run.

[Call] is client.Call with a context: it returns when the context ends,
and the request carries the context's deadline to the server, where a
service whose argument embeds [Delivery] gets it from [Delivery.Context]
and passes it on to its own calls. Hooks on each side ([WithClientHook],
[WithServerHook], [WithHooks]) see every call as it begins and ends, with
its headers: the module otelamqprpc builds OpenTelemetry tracing on them.

Every server instance also answers control requests about itself on a
queue of its own: [Ping], [Info] and [Stats] list the instances of a
service (or of every service), where each runs, and per method the calls it
has answered, the errors, the processing time and the last error. The
amqprpc command's ls, info and stats print them; [WithVersion] and
[WithMetadata] add to what an instance says, and [WithoutControl] turns it
off.
*/
package amqprpc
