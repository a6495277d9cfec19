package amqprpc

import (
	"context"
	"net/rpc"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Hooks: one interception point on each side of a call, for tracing,
// metrics, auth tokens or logging. A hook is called as a call begins and
// returns a function the codec calls once as it ends. A client hook may
// write headers into the request; a server hook reads them and may put
// values into the context the service gets from [Delivery.Context].

// CallInfo describes a call to a hook.
type CallInfo struct {
	// Method is net/rpc's "Service.Method", the request's type property
	// (on the server, the default method when the request had none).
	Method string
	// Queue is the service queue.
	Queue string
	// CorrelationID and MessageID are the request's correlation_id and
	// message_id properties.
	CorrelationID, MessageID string
	// Header is the request's AMQP headers table. A client hook may add
	// entries to it, and the request carries them; a server hook reads
	// what the request carried (nil when it carried nothing). The table is
	// the hook's only while the hook runs.
	Header amqp.Table
	// Deadline is when the caller stops waiting: on the client, the
	// earlier of the call timeout and the deadline of [Call]'s context; on
	// the server, the request's [DeadlineHeader]. Zero when not known.
	Deadline time.Time
}

// CallEnd is called once when a call ends, with how long it took and how
// it ended: nil, or the error the caller sees (on the server, the error
// its caller gets: the service's error or the codec's refusal as an
// [rpc.ServerError], or a failure to publish the reply). It usually runs
// on the goroutine that reads replies (on the client) or publishes them
// (on the server), and holds up the calls behind it: it must be quick.
type CallEnd func(elapsed time.Duration, err error)

// ClientHook is called once for each call a client makes, before its
// request is published, with the call's context (the one given to [Call];
// context.Background() for client.Call and client.Go). It may add entries
// to info.Header. The CallEnd it returns, if not nil, is called when the
// call ends: with its reply, a failure (a timeout, a lost connection, a
// returned request), the end of Call's context, or the client's Close.
// It is called on the goroutine that called Call or Go, one call at a
// time per client (net/rpc writes requests in turn), and must not block.
type ClientHook func(ctx context.Context, info *CallInfo) CallEnd

// ServerHook is called once for each request a server takes from its
// queue, before the request's body is decoded, with a context that
// carries the caller's deadline when the request has one. The context it
// returns is the one the service gets from [Delivery.Context]: ctx, or a
// context derived from it. The CallEnd it returns, if not nil, is called
// exactly once: when the reply is published (or dropped, for a request
// with no reply_to), or when the server, stopping, puts the request back
// in the queue unanswered (taken as it closed, or cut off by the shutdown
// grace period; the error then matches [ErrClosed], and the request will
// be delivered again). Requests the server refuses on its own (no
// method, an unsupported content type, a body over the size limit) are
// shown too. It runs on the goroutine that reads requests, one request at
// a time per server, and must not block.
type ServerHook func(ctx context.Context, info *CallInfo) (context.Context, CallEnd)

// WithClientHook adds h to a client's hooks. Hooks run in the order they
// were given, and their CallEnds in the reverse order. A nil h is an
// error. No hook by default.
func WithClientHook(h ClientHook) ClientOption {
	return client(func(o *clientOptions) { o.hooks = append(o.hooks, h) })
}

// WithServerHook adds h to a server's hooks, as [WithClientHook] does for a
// client. A nil h is an error. No hook by default.
func WithServerHook(h ServerHook) ServerOption {
	return server(func(o *serverOptions) { o.hooks = append(o.hooks, h) })
}

// WithHooks is [WithClientHook](client) and [WithServerHook](server) in one
// [Option] for either side, for a package that instruments both (such as
// otelamqprpc). Either may be nil: that side then gets no hook.
func WithHooks(client ClientHook, server ServerHook) Option {
	return hooksOption{client: client, server: server}
}

type hooksOption struct {
	client ClientHook
	server ServerHook
}

func (h hooksOption) applyClient(o *clientOptions) {
	if h.client != nil {
		o.hooks = append(o.hooks, h.client)
	}
}

func (h hooksOption) applyServer(o *serverOptions) {
	if h.server != nil {
		o.hooks = append(o.hooks, h.server)
	}
}

// hasNil reports whether a list of hooks holds a nil one.
func hasNil[H ClientHook | ServerHook](hooks []H) bool {
	for _, h := range hooks {
		if h == nil {
			return true
		}
	}
	return false
}

// clientHooks runs a client's hooks and remembers, per call in flight, the
// CallEnds to call when it ends. With no hooks it does nothing and costs a
// length check.
type clientHooks struct {
	queue string
	list  []ClientHook

	mu   sync.Mutex // guards ends
	ends map[uint64]*hookedCall
}

// hookedCall is a call the hooks watch.
type hookedCall struct {
	start time.Time
	ends  []CallEnd
}

func (h *clientHooks) active() bool { return len(h.list) > 0 }

// begin runs the hooks for the call seq, which began at start. Not under
// any lock of the codec's.
func (h *clientHooks) begin(ctx context.Context, seq uint64, info *CallInfo, start time.Time) {
	var ends []CallEnd
	for _, hook := range h.list {
		if end := hook(ctx, info); end != nil {
			ends = append(ends, end)
		}
	}
	if ends == nil {
		return
	}
	h.mu.Lock()
	if h.ends == nil {
		h.ends = make(map[uint64]*hookedCall)
	}
	h.ends[seq] = &hookedCall{start: start, ends: ends}
	h.mu.Unlock()
}

// end ends the call seq, once: later ends of it do nothing. Not under any
// lock of the codec's.
func (h *clientHooks) end(seq uint64, err error) {
	if hc := h.take(seq); hc != nil {
		hc.run(err)
	}
}

// take returns the hooked call seq, if not ended yet, for the caller to
// run it: only one can. It may be called under c.mu.
func (h *clientHooks) take(seq uint64) *hookedCall {
	if !h.active() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.ends[seq]
	delete(h.ends, seq)
	return hc
}

// endReply ends the call whose response ReadResponseBody has read: errText
// is the failure net/rpc hands the caller, readErr a reply that did not
// decode.
func (h *clientHooks) endReply(seq uint64, errText string, readErr *error) {
	var err error
	switch {
	case errText != "":
		err = rpc.ServerError(errText)
	case *readErr != nil:
		err = *readErr
	}
	h.end(seq, err)
}

// endAll ends every call still watched, when the client closes: net/rpc
// fails them with rpc.ErrShutdown.
func (h *clientHooks) endAll() {
	if !h.active() {
		return
	}
	h.mu.Lock()
	all := h.ends
	h.ends = nil
	h.mu.Unlock()
	for _, hc := range all {
		hc.run(rpc.ErrShutdown)
	}
}

// run calls the CallEnds of a call; a nil hc has none.
func (hc *hookedCall) run(err error) {
	if hc == nil {
		return
	}
	elapsed := time.Since(hc.start)
	for i := len(hc.ends) - 1; i >= 0; i-- {
		hc.ends[i](elapsed, err)
	}
}

// serverHooks runs a server's hooks.
type serverHooks struct {
	queue string
	list  []ServerHook
}

// requestContext is what a request carries on the server when it has a
// deadline or the server has hooks: the context its service sees, and
// what to do when its reply is out.
type requestContext struct {
	ctx    context.Context
	cancel context.CancelFunc // nil without a deadline
	start  time.Time
	ends   []CallEnd
}

// begin gives in its context, from base (the codec's), the request's
// deadline and the hooks, as ReadRequestHeader takes it. A request with
// neither a deadline nor hooks gets none (its service sees base), and
// costs nothing more.
func (h *serverHooks) begin(in *inbound, base context.Context) {
	deadline, hasDeadline := deadlineFrom(in.req.Headers)
	if !hasDeadline && len(h.list) == 0 {
		return
	}
	rc := &requestContext{ctx: base, start: time.Now()}
	if hasDeadline {
		rc.ctx, rc.cancel = context.WithDeadline(rc.ctx, deadline)
	}
	if len(h.list) > 0 {
		info := &CallInfo{
			Method:        in.method,
			Queue:         h.queue,
			CorrelationID: in.req.CorrelationId,
			MessageID:     in.req.MessageId,
			Header:        in.req.Headers,
			Deadline:      deadline,
		}
		for _, hook := range h.list {
			ctx, end := hook(rc.ctx, info)
			if ctx != nil {
				rc.ctx = ctx
			}
			if end != nil {
				rc.ends = append(rc.ends, end)
			}
		}
	}
	in.rc = rc
}

// finish ends a request whose reply is published (or dropped), or which
// went back to the queue unanswered: errText is the error its caller gets,
// sendErr a failure to publish the reply or why it went back.
func (rc *requestContext) finish(errText string, sendErr error) {
	if rc == nil {
		return
	}
	if rc.cancel != nil {
		rc.cancel()
	}
	var err error
	switch {
	case errText != "":
		err = rpc.ServerError(errText)
	case sendErr != nil:
		err = sendErr
	}
	elapsed := time.Since(rc.start)
	for i := len(rc.ends) - 1; i >= 0; i-- {
		rc.ends[i](elapsed, err)
	}
}
