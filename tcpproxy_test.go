package amqprpc

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpProxyDialTimeout bounds the proxy's connection to its target.
const tcpProxyDialTimeout = 5 * time.Second

// A tcpProxy forwards TCP connections from a port on 127.0.0.1 to a target,
// and plays network faults: Pause stops forwarding in both directions while
// keeping every socket open (a black hole, as a pulled cable looks to both
// ends until their heartbeats notice), PauseUpstream and PauseDownstream
// stop one direction alone, Resume forwards again (what was held back
// arrives, as after a healed partition), Cut closes every connection.
type tcpProxy struct {
	ln     net.Listener
	target string
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and one goroutine per link and direction

	mu         sync.Mutex    // guards forward, upstream, downstream, readBuffer, links, accepted and closed
	forward    chan struct{} // closed while forwarding; open while paused
	upstream   chan struct{} // the same for the client-to-target direction alone
	downstream chan struct{} // the same for the target-to-client direction alone
	readBuffer int           // receive buffer of the proxy's sockets; 0 leaves the system's
	links      map[*proxyLink]struct{}
	accepted   int // connections accepted so far
	closed     bool
}

// A proxyLink is one client connection and its connection to the target.
type proxyLink struct {
	client net.Conn
	cut    chan struct{} // closed by close

	mu     sync.Mutex // guards server and closed
	server net.Conn   // nil until dialed
	closed bool
}

// newTCPProxy starts a proxy to target (host:port) on a free port of
// 127.0.0.1, forwarding; it is closed when the test ends.
func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen = %v", err)
	}
	forward, upstream, downstream := make(chan struct{}), make(chan struct{}), make(chan struct{})
	close(forward)
	close(upstream)
	close(downstream)
	ctx, cancel := context.WithCancel(context.Background())
	p := &tcpProxy{
		ln:         ln,
		target:     target,
		ctx:        ctx,
		cancel:     cancel,
		forward:    forward,
		upstream:   upstream,
		downstream: downstream,
		links:      make(map[*proxyLink]struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, host:port, to dial instead of the
// target.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// Port returns the proxy's port on 127.0.0.1.
func (p *tcpProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Pause stops forwarding in both directions; sockets stay open, and new
// connections are accepted but not forwarded. Data already being written
// when Pause is called (one buffer each way at most) still goes through.
func (p *tcpProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.forward:
		p.forward = make(chan struct{})
	default: // already paused
	}
}

// PauseUpstream stops forwarding from clients to the target only: what
// clients write piles up until their writes block, while what the target
// sends still arrives (a half-stalled network).
func (p *tcpProxy) PauseUpstream() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.upstream:
		p.upstream = make(chan struct{})
	default:
	}
}

// PauseDownstream stops forwarding from the target to clients only: what
// the target sends is held back, while what clients write still arrives.
func (p *tcpProxy) PauseDownstream() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.downstream:
		p.downstream = make(chan struct{})
	default:
	}
}

// ResumeDownstream forwards from the target to clients again, while any
// Pause or PauseUpstream still holds the other direction.
func (p *tcpProxy) ResumeDownstream() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.downstream:
	default:
		close(p.downstream)
	}
}

// Resume forwards again after Pause, PauseUpstream or PauseDownstream.
func (p *tcpProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range []chan struct{}{p.forward, p.upstream, p.downstream} {
		select {
		case <-c:
		default:
			close(c)
		}
	}
}

// SetReadBuffer sets the receive buffer (SO_RCVBUF) of the sockets of
// connections the proxy accepts or dials from now on, so that a paused
// direction holds back little: a writer at the other end blocks once its
// own send buffer and this one are full, instead of once the kernel's
// autotuned buffers (megabytes on loopback) are.
func (p *tcpProxy) SetReadBuffer(bytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readBuffer = bytes
}

// setReadBuffer applies SetReadBuffer to c.
func (p *tcpProxy) setReadBuffer(c net.Conn) {
	p.mu.Lock()
	n := p.readBuffer
	p.mu.Unlock()
	if tc, ok := c.(*net.TCPConn); ok && n > 0 {
		_ = tc.SetReadBuffer(n) // best effort: a larger buffer only weakens a stall
	}
}

// Cut closes every current connection, both sides; new ones are forwarded
// as before (or held, when paused).
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	links := make([]*proxyLink, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// Conns returns the number of connections the proxy holds.
func (p *tcpProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Accepted returns the number of connections the proxy has accepted so
// far, held or forwarded, open or not.
func (p *tcpProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Close stops accepting, closes every connection and waits until all of the
// proxy's goroutines have ended. It may be called more than once.
func (p *tcpProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.cancel()
	p.Cut()
	p.wg.Wait()
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed; Accept on loopback fails for nothing else here
		}
		p.setReadBuffer(c)
		l := &proxyLink{client: c, cut: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(l)
	}
}

// serve connects l to the target, once forwarding, and pumps both ways.
func (p *tcpProxy) serve(l *proxyLink) {
	defer p.wg.Done()
	if !p.waitForward(l) {
		p.drop(l)
		return
	}
	d := net.Dialer{Timeout: tcpProxyDialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil || !l.setServer(server) {
		p.drop(l)
		return
	}
	p.setReadBuffer(server)
	p.wg.Add(2)
	go p.pump(l, server, l.client, true)
	go p.pump(l, l.client, server, false)
}

// pump copies src to dst while forwarding; the first error or EOF either
// way closes the whole link.
func (p *tcpProxy) pump(l *proxyLink, dst, src net.Conn, up bool) {
	defer p.wg.Done()
	defer p.drop(l)
	buf := make([]byte, 32<<10)
	for {
		if !p.waitForward(l) {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			// A Pause during the Read holds back what it read.
			if !p.waitForward(l) || !p.waitDirection(l, up) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitForward blocks while the proxy is paused, and reports false when l is
// cut or the proxy closed meanwhile.
func (p *tcpProxy) waitForward(l *proxyLink) bool {
	p.mu.Lock()
	forward := p.forward
	p.mu.Unlock()
	select {
	case <-forward:
		select {
		case <-l.cut:
			return false
		default:
			return true
		}
	case <-l.cut:
		return false
	case <-p.ctx.Done():
		return false
	}
}

// waitDirection blocks while PauseUpstream (up) or PauseDownstream (!up)
// holds, like waitForward.
func (p *tcpProxy) waitDirection(l *proxyLink, up bool) bool {
	p.mu.Lock()
	dir := p.downstream
	if up {
		dir = p.upstream
	}
	p.mu.Unlock()
	select {
	case <-dir:
		return true
	case <-l.cut:
		return false
	case <-p.ctx.Done():
		return false
	}
}

// drop closes l and forgets it.
func (p *tcpProxy) drop(l *proxyLink) {
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// setServer records the link's connection to the target, or closes it and
// reports false when the link was cut while dialing.
func (l *proxyLink) setServer(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.server = c
	return true
}

// close closes both connections, once.
func (l *proxyLink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.cut)
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
}
