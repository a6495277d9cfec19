<?php
// amqp_connect opens a php-amqplib connection to an AMQP URL
// (amqp://user:password@host:port/vhost). A path of "" or "/" is the
// default vhost "/", as most clients and URLs people write mean it.

require_once '/usr/share/php/PhpAmqpLib/autoload.php'; // Debian's php-amqplib

use PhpAmqpLib\Connection\AMQPStreamConnection;

function amqp_connect(string $url): AMQPStreamConnection
{
    $u = parse_url($url);
    if ($u === false || ($u['scheme'] ?? '') !== 'amqp') {
        throw new InvalidArgumentException('not an amqp:// URL');
    }
    $path = $u['path'] ?? '';
    $vhost = ($path === '' || $path === '/') ? '/' : rawurldecode(substr($path, 1));
    return new AMQPStreamConnection(
        $u['host'] ?? '127.0.0.1',
        $u['port'] ?? 5672,
        rawurldecode($u['user'] ?? 'guest'),
        rawurldecode($u['pass'] ?? 'guest'),
        $vhost
    );
}
