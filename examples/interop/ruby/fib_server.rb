#!/usr/bin/env ruby
# A Fibonacci server in the style of RabbitMQ's RPC tutorial, on Bunny
# (Debian's ruby-bunny).
#
# It knows nothing of amqprpc: it reads each request body as a decimal
# number n and replies fib(n) as text to reply_to, with the request's
# correlation_id, one request at a time. It leaves Bunny's defaults alone,
# so every reply is marked content_type application/octet-stream, which
# an amqprpc client reads as text/plain. An amqprpc client calls it with
# WithEncoding(codec.JSON) or codec.Text: the type property is ignored.
#
# The queue is declared non-durable and outlives the server. Prints READY
# once consuming; SIGTERM or SIGINT stop it, exit status 0.
#
#   ruby fib_server.rb --queue rpc_queue

require 'bunny'
require 'logger'
require 'optparse'
require 'uri'

def fib(n)
  a, b = 0, 1
  n.times { a, b = b, a + b }
  a
end

url = ENV.fetch('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/')
queue = 'rpc_queue'
OptionParser.new do |o|
  o.banner = 'usage: fib_server.rb [--url URL] [--queue QUEUE]'
  o.on('--url URL') { |v| url = v }
  o.on('--queue QUEUE') { |v| queue = v }
end.parse!

# A signal only writes to a pipe; the main thread waits on it.
stop_r, stop_w = IO.pipe
%w[TERM INT].each { |sig| trap(sig) { stop_w.write_nonblock('.', exception: false) } }

# Bunny reads a URL path of "/" as the vhost ""; most clients, and the
# URLs people write, mean the default vhost "/".
settings = { logger: Logger.new($stderr, level: Logger::WARN) }
settings[:vhost] = '/' if ['', '/'].include?(URI(url).path)
conn = Bunny.new(url, settings)
conn.start
ch = conn.create_channel
ch.prefetch(1)
requests = ch.queue(queue)
served = 0
consumer = requests.subscribe(manual_ack: true) do |delivery, props, body|
  text = body.strip
  reply = text.match?(/\A\d{1,2}\z/) && text.to_i <= 92 ? fib(text.to_i).to_s : "not a number: #{text[0, 32].inspect}"
  ch.default_exchange.publish(reply, routing_key: props.reply_to, correlation_id: props.correlation_id)
  ch.ack(delivery.delivery_tag)
  served += 1
end
puts "READY queue=#{queue}"
$stdout.flush
stop_r.read(1)
consumer.cancel
conn.close
puts "STOPPED served=#{served}"
