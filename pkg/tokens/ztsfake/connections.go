package ztsfake

import (
	"net"
	"sync"
	"sync/atomic"
)

// RefuseConnections makes the server, while on, reset every new TCP
// connection as soon as it is accepted and cut the connections already
// open: ZTS down or firewalled while its address still answers. Unlike
// Close it can be turned off again, so a test can show recovery.
func (s *Server) RefuseConnections(on bool) {
	s.conns.refusing.Store(on)
	if on {
		s.conns.cutAll()
	}
}

// Connections returns how many TCP connections the server has accepted,
// and how many of those it reset because RefuseConnections was on.
func (s *Server) Connections() (accepted, refused int) {
	return int(s.conns.accepted.Load()), int(s.conns.refused.Load())
}

// gateListener implements RefuseConnections under the TLS listener.
type gateListener struct {
	net.Listener
	refusing          atomic.Bool
	accepted, refused atomic.Int64

	mu   sync.Mutex // guards open
	open map[*gateConn]struct{}
}

func newGateListener(l net.Listener) *gateListener {
	return &gateListener{Listener: l, open: map[*gateConn]struct{}{}}
}

func (g *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		g.accepted.Add(1)
		if g.refusing.Load() {
			g.refused.Add(1)
			reset(c)
			continue
		}
		gc := &gateConn{Conn: c, g: g}
		g.mu.Lock()
		g.open[gc] = struct{}{}
		g.mu.Unlock()
		return gc, nil
	}
}

func (g *gateListener) cutAll() {
	g.mu.Lock()
	conns := make([]*gateConn, 0, len(g.open))
	for c := range g.open {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		reset(c.Conn)
		c.forget()
	}
}

// reset closes c with an RST rather than a FIN, as a refusing host does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

type gateConn struct {
	net.Conn
	g *gateListener
}

func (c *gateConn) forget() {
	c.g.mu.Lock()
	delete(c.g.open, c)
	c.g.mu.Unlock()
}

func (c *gateConn) Close() error {
	c.forget()
	return c.Conn.Close()
}
