<?php
// A Fibonacci server in the style of RabbitMQ's RPC tutorial, on
// php-amqplib (Debian's php-amqplib).
//
// It knows nothing of amqprpc: it reads each request body as a decimal
// number n and replies fib(n) as text to reply_to, with the request's
// correlation_id and no content_type, one request at a time. An amqprpc
// client calls it with WithEncoding(codec.JSON) or codec.Text: the type
// property is ignored.
//
// The queue is declared non-durable and outlives the server. Prints READY
// once consuming; SIGTERM or SIGINT stop it, exit status 0.
//
//   php fib_server.php --queue rpc_queue

require_once __DIR__ . '/amqp_url.php';

use PhpAmqpLib\Exception\AMQPTimeoutException;
use PhpAmqpLib\Message\AMQPMessage;

function fib(int $n): int
{
    [$a, $b] = [0, 1];
    for ($i = 0; $i < $n; $i++) {
        [$a, $b] = [$b, $a + $b];
    }
    return $a;
}

$opts = getopt('', ['url:', 'queue:']);
$url = $opts['url'] ?? (getenv('AMQP_URL') ?: 'amqp://guest:guest@127.0.0.1:5672/');
$queue = $opts['queue'] ?? 'rpc_queue';

$stopping = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stopping) { $stopping = true; });
pcntl_signal(SIGINT, function () use (&$stopping) { $stopping = true; });

$conn = amqp_connect($url);
$ch = $conn->channel();
$ch->queue_declare($queue, false, false, false, false);
$ch->basic_qos(null, 1, null);
$served = 0;
$tag = $ch->basic_consume($queue, '', false, false, false, false, function (AMQPMessage $req) use (&$served) {
    $text = trim($req->getBody());
    $reply = preg_match('/^\d{1,2}$/', $text) && (int) $text <= 92 ? (string) fib((int) $text) : 'not a number: ' . json_encode(substr($text, 0, 32));
    $msg = new AMQPMessage($reply, ['correlation_id' => $req->get('correlation_id')]);
    $req->getChannel()->basic_publish($msg, '', $req->get('reply_to'));
    $req->ack();
    $served++;
});
echo "READY queue=$queue\n";
while (!$stopping) {
    try {
        $ch->wait(null, false, 0.2);
    } catch (AMQPTimeoutException $e) {
        // nothing came: look at $stopping again
    }
}
$ch->basic_cancel($tag);
$ch->close();
$conn->close();
echo "STOPPED served=$served\n";
