package amqprpc

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// Defaults of the options.
const (
	DefaultPrefetch     = 64
	DefaultCallTimeout  = 30 * time.Second
	DefaultMaxBodySize  = 16 << 20
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 10 * time.Second
	// DefaultShutdownGrace is how long a stopping server waits for its
	// methods still running, unless [WithShutdownGrace] says otherwise:
	// long enough for ordinary calls to finish, and short enough to end
	// before the usual orchestrators give up on a process (Docker kills it
	// 10 s after asking it to stop, Kubernetes 30 s).
	DefaultShutdownGrace = 5 * time.Second
)

// ClientOption configures a client: [Dial] or [NewClientCodec].
type ClientOption interface{ applyClient(*clientOptions) }

// ServerOption configures a server: [Serve] or [NewServerCodec].
type ServerOption interface{ applyServer(*serverOptions) }

// Option configures either side: it is both a [ClientOption] and a
// [ServerOption], and a [ControlOption] too. An option meant for one side
// only has that side's type, so passing it to the other does not compile.
type Option interface {
	ClientOption
	ServerOption
	ControlOption
}

// options are what both sides have.
type options struct {
	urls         []string
	tlsConfig    *tls.Config
	heartbeat    time.Duration
	confirms     bool
	maxBody      int
	reconnectMin time.Duration
	reconnectMax time.Duration
	name         string
	logger       *slog.Logger
}

type clientOptions struct {
	options
	encoding      codec.Encoding
	directReplyTo bool
	callTimeout   time.Duration
	maxInFlight   int
	hooks         []ClientHook // WithClientHook, WithHooks (hooks.go)
	inspectWait   time.Duration
}

type serverOptions struct {
	options
	prefetch      int
	defaultMethod string
	transient     bool
	quorum        bool
	queueExpiry   time.Duration
	shutdownGrace time.Duration
	ready         func()
	hooks         []ServerHook      // WithServerHook, WithHooks (hooks.go)
	replyStore    *replyStoreConfig // WithReplyStore (replystore.go)
	version       string            // WithVersion (control.go)
	metadata      map[string]string // WithMetadata (control.go)
	noControl     bool              // WithoutControl (control.go)
}

// both is an option of either side; client and server, of one side.
type (
	both   func(*options)
	client func(*clientOptions)
	server func(*serverOptions)
)

func (f both) applyClient(o *clientOptions)   { f(&o.options) }
func (f both) applyServer(o *serverOptions)   { f(&o.options) }
func (f client) applyClient(o *clientOptions) { f(o) }
func (f server) applyServer(o *serverOptions) { f(o) }

var errNilOption = errors.New("amqprpc: nil option")

func defaultOptions() options {
	return options{
		maxBody:      DefaultMaxBodySize,
		reconnectMin: DefaultReconnectMin,
		reconnectMax: DefaultReconnectMax,
		logger:       slog.New(slog.DiscardHandler),
	}
}

func newClientOptions(opts []ClientOption) (*clientOptions, error) {
	o := &clientOptions{options: defaultOptions(), encoding: codec.Gob, callTimeout: DefaultCallTimeout, inspectWait: defaultInspectWait}
	for _, opt := range opts {
		if opt == nil {
			return nil, errNilOption
		}
		opt.applyClient(o)
	}
	switch {
	case !o.encoding.Valid():
		return nil, fmt.Errorf("amqprpc: WithEncoding: unknown encoding %v", o.encoding)
	case o.callTimeout < 0:
		return nil, fmt.Errorf("amqprpc: WithCallTimeout(%v): want 0 (never) or more", o.callTimeout)
	case o.callTimeout > 0 && o.callTimeout < time.Millisecond:
		return nil, fmt.Errorf("amqprpc: WithCallTimeout(%v): want at least 1ms, the unit of AMQP expiration", o.callTimeout)
	case o.maxInFlight < 0:
		return nil, fmt.Errorf("amqprpc: WithMaxInFlight(%d): want 0 (no limit) or more", o.maxInFlight)
	case hasNil(o.hooks):
		return nil, errors.New("amqprpc: WithClientHook(nil): want a hook")
	}
	return o, o.check()
}

func newServerOptions(opts []ServerOption) (*serverOptions, error) {
	o := &serverOptions{options: defaultOptions(), prefetch: DefaultPrefetch, shutdownGrace: DefaultShutdownGrace}
	for _, opt := range opts {
		if opt == nil {
			return nil, errNilOption
		}
		opt.applyServer(o)
	}
	switch {
	case o.prefetch < 1 || o.prefetch > 65535:
		return nil, fmt.Errorf("amqprpc: WithPrefetch(%d): want 1 to 65535", o.prefetch)
	case o.queueExpiry < 0 || (o.queueExpiry > 0 && o.queueExpiry < time.Millisecond):
		return nil, fmt.Errorf("amqprpc: WithQueueExpiry(%v): want at least 1ms", o.queueExpiry)
	case o.shutdownGrace < 0:
		return nil, fmt.Errorf("amqprpc: WithShutdownGrace(%v): want 0 (cut off at once) or more", o.shutdownGrace)
	case o.quorum && o.transient:
		return nil, errors.New("amqprpc: WithQuorumQueue and WithTransientQueue: quorum queues are always durable")
	case hasNil(o.hooks):
		return nil, errors.New("amqprpc: WithServerHook(nil): want a hook")
	}
	if err := o.replyStore.check(); err != nil {
		return nil, err
	}
	return o, o.check()
}

// check validates what both sides have.
func (o *options) check() error {
	switch {
	case o.heartbeat < 0:
		return fmt.Errorf("amqprpc: WithHeartbeat(%v): want 0 (the default) or more", o.heartbeat)
	case o.maxBody < 1:
		return fmt.Errorf("amqprpc: WithMaxBodySize(%d): want at least 1", o.maxBody)
	case o.reconnectMin <= 0 || o.reconnectMax < o.reconnectMin:
		return fmt.Errorf("amqprpc: WithReconnectBackoff(%v, %v): want 0 < min <= max", o.reconnectMin, o.reconnectMax)
	}
	return nil
}

// transport returns the transport configuration: a connection to borrow,
// or else a dialer for url and any WithURLs.
func (o *options) transport(conn *amqp.Connection, url string) transport.Config {
	cfg := transport.Config{
		Conn:    conn,
		Confirm: o.confirms,
		Backoff: transport.Backoff{Min: o.reconnectMin, Max: o.reconnectMax},
		Logger:  o.logger,
	}
	if conn == nil {
		d := &dialer{urls: append([]string{url}, o.urls...), tlsConfig: o.tlsConfig, heartbeat: o.heartbeat, name: o.name}
		cfg.Dial = d.Dial
	}
	return cfg
}

// WithEncoding sets the encoding of a client's requests: [codec.Gob] (the
// default, as net/rpc), [codec.JSON] or [codec.Text]. A server answers each
// request in the encoding it came in.
func WithEncoding(e codec.Encoding) ClientOption {
	return client(func(o *clientOptions) { o.encoding = e })
}

// WithDirectReplyTo makes a client receive replies through RabbitMQ's direct
// reply-to (amq.rabbitmq.reply-to) instead of a private exclusive queue it
// declares. Direct reply-to saves a queue per client; the default private
// queue works on any AMQP 0-9-1 broker.
func WithDirectReplyTo() ClientOption {
	return client(func(o *clientOptions) { o.directReplyTo = true })
}

// WithCallTimeout makes a client's call fail with [ErrTimeout] when no reply
// has come after d, and sets each request's AMQP expiration to d so that a
// request nobody took in time is never executed (default
// [DefaultCallTimeout]; 0 means never). The expiration is at most 2³²−1
// ms, about 49.7 days, what brokers accept: a longer d still bounds the
// call, while the queue lets go of a request nobody took sooner.
func WithCallTimeout(d time.Duration) ClientOption {
	return client(func(o *clientOptions) { o.callTimeout = d })
}

// WithMaxInFlight bounds the calls a client has in flight at once. A call
// of client.Call or client.Go beyond the bound fails at once with
// [ErrTooManyCalls]: net/rpc sends requests one at a time, so a call that
// waited there would hold up every other caller. A call of [Call] waits for
// a slot, within its context and the call timeout, without holding anyone
// up, and then fails with [ErrTooManyCalls] (or its context's error). The
// default, 0, sets no bound.
func WithMaxInFlight(n int) ClientOption {
	return client(func(o *clientOptions) { o.maxInFlight = n })
}

// WithPrefetch bounds the requests a server holds unacknowledged, and so runs
// at once (default [DefaultPrefetch]).
func WithPrefetch(n int) ServerOption { return server(func(o *serverOptions) { o.prefetch = n }) }

// WithDefaultMethod names the service method ("Service.Method") a server runs
// for a request with no type property, as RabbitMQ's tutorial clients send.
// Without it such a request gets an [ErrNoMethod] error reply. An amqprpc
// client sends no type for an empty method: client.Call("", arg, &reply).
func WithDefaultMethod(serviceMethod string) ServerOption {
	return server(func(o *serverOptions) { o.defaultMethod = serviceMethod })
}

// WithTransientQueue makes a server declare its request queue non-durable,
// so it disappears with a broker restart. By default the queue is a durable
// classic queue. RabbitMQ 4.3 and later refuse a non-durable queue that is
// not exclusive unless every node permits it
// (deprecated_features.permit.transient_nonexcl_queues = true); there Serve
// returns the broker's refusal. For a queue that goes away once unused, use
// [WithQueueExpiry] on the default durable queue instead.
func WithTransientQueue() ServerOption { return server(func(o *serverOptions) { o.transient = true }) }

// WithQuorumQueue makes a server declare its request queue as a replicated
// quorum queue (x-queue-type: quorum), for clusters.
func WithQuorumQueue() ServerOption { return server(func(o *serverOptions) { o.quorum = true }) }

// WithQueueExpiry makes a server declare its request queue so that the
// broker deletes it once it has had no consumer for d (x-expires): for
// short-lived services, demos and tests. Requests still waiting in it are
// deleted with it. Every server of the queue must use the same d. Off by
// default.
func WithQueueExpiry(d time.Duration) ServerOption {
	return server(func(o *serverOptions) { o.queueExpiry = d })
}

// WithShutdownGrace sets how long a stopping server (the end of [Serve]'s
// context, or Close of a codec from [NewServerCodec]) waits for the
// methods still running to return (default [DefaultShutdownGrace]; 0 cuts
// them off at once). When it runs out, their contexts
// ([Delivery.Context]) are cancelled and their requests go back to the
// queue unanswered, to be delivered again to this server or another: the
// method may run again, as after a crash, and what it returns here is
// dropped. A method that ignores its context may still be running when
// another server takes its request.
func WithShutdownGrace(d time.Duration) ServerOption {
	return server(func(o *serverOptions) { o.shutdownGrace = d })
}

// WithReady has [Serve] call f once, from the goroutine that called Serve,
// as soon as its queue is declared and consumed, before it serves the first
// request: the moment callers in the same process can start. f must not
// block for long.
func WithReady(f func()) ServerOption { return server(func(o *serverOptions) { o.ready = f }) }

// WithURLs adds broker URLs, such as the other nodes of a cluster, to the one
// passed to [Dial] or [Serve]. Every connection attempt tries them in turn.
func WithURLs(urls ...string) Option {
	return both(func(o *options) { o.urls = append(o.urls, urls...) })
}

// WithTLSConfig sets the TLS configuration for amqps:// URLs: a custom CA in
// RootCAs, a client certificate for mutual TLS, a ServerName (default: the
// system roots and the URL's host). It has no effect on amqp:// URLs. The
// library clones c and never modifies it.
func WithTLSConfig(c *tls.Config) Option { return both(func(o *options) { o.tlsConfig = c }) }

// WithHeartbeat sets the AMQP heartbeat interval, which bounds how long a
// dead connection goes unnoticed: about three intervals (default
// [DefaultHeartbeat]; below 1s, the broker's own interval applies).
func WithHeartbeat(d time.Duration) Option { return both(func(o *options) { o.heartbeat = d }) }

// WithConfirms turns on publisher confirms. A client then fails a call with
// [ErrNacked] when the broker refuses its request, and publishes a request
// again after a reconnect when the broker never confirmed it; a server
// acknowledges a request only once the broker has confirmed its reply. Off
// by default.
func WithConfirms() Option { return both(func(o *options) { o.confirms = true }) }

// WithMaxBodySize bounds request and reply bodies in bytes (default
// [DefaultMaxBodySize]). A larger request gets an [ErrBodyTooLarge] error
// reply; a larger reply becomes one.
func WithMaxBodySize(n int) Option { return both(func(o *options) { o.maxBody = n }) }

// WithReconnectBackoff sets the delays between reconnect attempts: from min,
// doubling up to max, each drawn at random from its upper half (default
// [DefaultReconnectMin], [DefaultReconnectMax]).
func WithReconnectBackoff(min, max time.Duration) Option {
	return both(func(o *options) { o.reconnectMin, o.reconnectMax = min, max })
}

// WithConnectionName sets the connection_name the broker shows for
// connections the client or server opens.
func WithConnectionName(name string) Option { return both(func(o *options) { o.name = name }) }

// WithLogger makes the client or server log connection losses, reconnects
// and dropped messages to l. By default, and with a nil l, nothing is
// logged.
func WithLogger(l *slog.Logger) Option {
	return both(func(o *options) {
		if l != nil {
			o.logger = l
		}
	})
}
