<?php
// A Fibonacci client in the style of RabbitMQ's RPC tutorial, on
// php-amqplib (Debian's php-amqplib).
//
// It knows nothing of amqprpc: each request is the number as text with no
// content_type and no type, a fresh correlation_id, and reply_to naming an
// exclusive, server-named queue of its own; one call at a time. An
// amqprpc server with a default method (WithDefaultMethod) answers it.
//
// Prints "fib(N) = V" for each N given; exits 1 on the first call that
// fails, saying why on stderr (an error reply's x-rpc-error included).
//
//   php fib_client.php --queue rpc_queue 10 20 30

require_once __DIR__ . '/amqp_url.php';

use PhpAmqpLib\Message\AMQPMessage;

$opts = getopt('', ['url:', 'queue:', 'timeout:'], $rest);
$url = $opts['url'] ?? (getenv('AMQP_URL') ?: 'amqp://guest:guest@127.0.0.1:5672/');
$queue = $opts['queue'] ?? 'rpc_queue';
$timeout = (float) ($opts['timeout'] ?? 10);
$numbers = array_slice($argv, $rest);
if ($numbers === []) {
    fwrite(STDERR, "usage: fib_client.php [--url URL] [--queue QUEUE] [--timeout SECONDS] N...\n");
    exit(2);
}

try {
    $conn = amqp_connect($url);
    $ch = $conn->channel();
    [$replyQueue] = $ch->queue_declare('', false, false, true, false);
    $pending = null;
    $answer = null;
    $ch->basic_consume($replyQueue, '', false, true, false, false, function (AMQPMessage $msg) use (&$pending, &$answer) {
        if ($msg->has('correlation_id') && $msg->get('correlation_id') === $pending) {
            $answer = $msg;
        }
    });
    foreach ($numbers as $arg) {
        $n = (int) $arg;
        $pending = bin2hex(random_bytes(16));
        $answer = null;
        $ch->basic_publish(new AMQPMessage((string) $n, ['correlation_id' => $pending, 'reply_to' => $replyQueue]), '', $queue);
        while ($answer === null) {
            $ch->wait(null, false, $timeout); // throws AMQPTimeoutException
        }
        $headers = $answer->has('application_headers') ? $answer->get('application_headers')->getNativeData() : [];
        if (array_key_exists('x-rpc-error', $headers)) {
            throw new RuntimeException("fib($n) failed: " . $headers['x-rpc-error']);
        }
        echo "fib($n) = " . intval($answer->getBody()) . "\n";
    }
    $ch->close();
    $conn->close();
} catch (Throwable $e) {
    fwrite(STDERR, 'fib_client.php: ' . get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
