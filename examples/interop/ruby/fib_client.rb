#!/usr/bin/env ruby
# A Fibonacci client in the style of RabbitMQ's RPC tutorial, on Bunny
# (Debian's ruby-bunny).
#
# It knows nothing of amqprpc: each request is the number as text, with a
# fresh correlation_id and reply_to naming an exclusive, server-named queue
# of its own; one call at a time. It leaves Bunny's defaults alone, so
# every request is marked content_type application/octet-stream, which an
# amqprpc server reads as text/plain. An amqprpc server with a default
# method (WithDefaultMethod) answers it.
#
# Prints "fib(N) = V" for each N given; exits 1 on the first call that
# fails, saying why on stderr (an error reply's x-rpc-error included).
#
#   ruby fib_client.rb --queue rpc_queue 10 20 30

require 'bunny'
require 'logger'
require 'optparse'
require 'securerandom'
require 'uri'

# FibClient makes one call at a time and waits for the reply whose
# correlation_id is the call's.
class FibClient
  def initialize(conn, queue, timeout)
    @ch = conn.create_channel
    @queue = queue
    @timeout = timeout
    @lock = Mutex.new
    @arrived = ConditionVariable.new
    @replies = @ch.queue('', exclusive: true)
    @replies.subscribe do |_delivery, props, body|
      @lock.synchronize do
        if props.correlation_id == @pending
          @answer = [props.headers || {}, body]
          @arrived.signal
        end
      end
    end
  end

  def fib(n)
    @lock.synchronize do
      @pending = SecureRandom.uuid
      @answer = nil
      @ch.default_exchange.publish(n.to_s, routing_key: @queue,
                                           correlation_id: @pending, reply_to: @replies.name)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @timeout
      while @answer.nil?
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        raise "no reply to fib(#{n}) within #{@timeout}s" if left <= 0

        @arrived.wait(@lock, left)
      end
      headers, body = @answer
      raise "fib(#{n}) failed: #{headers['x-rpc-error']}" if headers.key?('x-rpc-error')

      Integer(body, 10)
    end
  end
end

url = ENV.fetch('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/')
queue = 'rpc_queue'
timeout = 10.0
OptionParser.new do |o|
  o.banner = 'usage: fib_client.rb [--url URL] [--queue QUEUE] [--timeout SECONDS] N...'
  o.on('--url URL') { |v| url = v }
  o.on('--queue QUEUE') { |v| queue = v }
  o.on('--timeout SECONDS', Float) { |v| timeout = v }
end.parse!
abort('usage: fib_client.rb [--url URL] [--queue QUEUE] [--timeout SECONDS] N...') if ARGV.empty?

# Bunny reads a URL path of "/" as the vhost ""; most clients, and the
# URLs people write, mean the default vhost "/".
settings = { logger: Logger.new($stderr, level: Logger::WARN) }
settings[:vhost] = '/' if ['', '/'].include?(URI(url).path)
conn = Bunny.new(url, settings)
begin
  conn.start
  client = FibClient.new(conn, queue, timeout)
  ARGV.each do |arg|
    n = Integer(arg, 10)
    puts "fib(#{n}) = #{client.fib(n)}"
    $stdout.flush
  end
rescue StandardError => e
  warn "fib_client.rb: #{e.message}"
  exit 1
ensure
  conn.close if conn.open?
end
