// A Fibonacci client in the style of RabbitMQ's RPC tutorial, on the
// RabbitMQ Java client (Debian's librabbitmq-client-java).
//
// It knows nothing of amqprpc: each request is the number as text with no
// content_type and no type, a fresh correlation_id, and reply_to naming a
// new server-named reply queue declared for that call alone. An amqprpc
// server with a default method (WithDefaultMethod) answers it.
//
// Prints "fib(N) = V" for each N given, one call at a time; exits 1 on the
// first call that fails. The URL comes from $AMQP_URL.
//
//   javac -cp /usr/share/java/amqp-client.jar -d /tmp/fib FibClient.java
//   java -cp /usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar:/tmp/fib \
//       FibClient rpc_queue 10 20 30

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

public class FibClient {
    private static final long REPLY_TIMEOUT_SECONDS = 10;

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: FibClient QUEUE N...");
            System.exit(2);
        }
        String url = System.getenv("AMQP_URL");
        if (url == null || url.isEmpty()) {
            url = "amqp://guest:guest@127.0.0.1:5672/";
        }
        ConnectionFactory factory = new ConnectionFactory();
        factory.setUri(url);
        if ("/".equals(new URI(url).getRawPath())) {
            // The Java client reads a lone "/" as the empty vhost name;
            // Go's and Python's clients, like most URLs people write, mean
            // the default vhost "/".
            factory.setVirtualHost("/");
        }
        try (Connection conn = factory.newConnection(); Channel ch = conn.createChannel()) {
            for (int i = 1; i < args.length; i++) {
                int n = Integer.parseInt(args[i]);
                System.out.println("fib(" + n + ") = " + call(ch, args[0], n));
            }
        } catch (Exception e) {
            System.err.println("FibClient: " + e + (e.getCause() == null ? "" : " (" + e.getCause() + ")"));
            System.exit(1);
        }
    }

    // call asks for fib(n) through a reply queue of its own.
    static long call(Channel ch, String queue, int n) throws Exception {
        String replyQueue = ch.queueDeclare().getQueue(); // server-named, exclusive, auto-delete
        String id = UUID.randomUUID().toString();
        BlockingQueue<String> answer = new ArrayBlockingQueue<>(1);
        String tag = ch.basicConsume(replyQueue, true, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String consumerTag, Envelope env, AMQP.BasicProperties props, byte[] body) {
                if (!id.equals(props.getCorrelationId())) {
                    return;
                }
                Object failure = props.getHeaders() == null ? null : props.getHeaders().get("x-rpc-error");
                answer.offer(failure != null ? "!" + failure : new String(body, StandardCharsets.UTF_8));
            }
        });
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .correlationId(id)
                .replyTo(replyQueue)
                .build();
        ch.basicPublish("", queue, props, Integer.toString(n).getBytes(StandardCharsets.UTF_8));
        String reply = answer.poll(REPLY_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        ch.basicCancel(tag);
        if (reply == null) {
            throw new Exception("no reply to fib(" + n + ") within " + REPLY_TIMEOUT_SECONDS + "s");
        }
        if (reply.startsWith("!")) {
            throw new Exception("fib(" + n + ") failed: " + reply.substring(1));
        }
        return Long.parseLong(reply.trim());
    }
}
