package amqprpc

// PingType is the request type that a server answers in its codec, before
// and without net/rpc: a no-op to see whether a server is consuming a queue
// and how long a round trip takes (the amqprpc command's ping uses it). Its
// reply is the string "pong" in the request's encoding. No service can
// claim the name: net/rpc serves only exported methods, and "ping" is not
// one.
const PingType = "amqprpc.ping"

// pingReply is the value a ping's reply carries.
const pingReply = "pong"

// answerPing replies to in itself when in is a ping, and reports whether
// it was.
func (c *serverCodec) answerPing(in *inbound) bool {
	if in.req.Type != PingType {
		return false
	}
	c.out.put(outbound{in: in, body: pingReply})
	return true
}
