package framework

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// FreeAddr returns "127.0.0.1:<port>" with a port that was free a moment
// ago. Another process may take it before it is used; on this test machine
// that is rare enough.
func FreeAddr() (string, error) {
	return FreeAddrOn(net.IPv4(127, 0, 0, 1))
}

// FreeAddrOn is FreeAddr on another local address.
func FreeAddrOn(ip net.IP) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return "", fmt.Errorf("finding a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// FreePort is FreeAddr's port.
func FreePort() (int, error) {
	return FreePortOn(net.IPv4(127, 0, 0, 1))
}

// FreePortOn is FreeAddrOn's port.
func FreePortOn(ip net.IP) (int, error) {
	addr, err := FreeAddrOn(ip)
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return strconv.Atoi(port)
}

// FirstIP is the first host address of n (10.0.0.0/24: 10.0.0.1): the
// "kubernetes" Service's cluster IP, or a bridge's gateway.
func FirstIP(n *net.IPNet) net.IP {
	ip := make(net.IP, len(n.IP.To4()))
	copy(ip, n.IP.To4())
	ip[len(ip)-1]++
	return ip
}

// readSome reads and closes a response body, returning at most 512 bytes
// of it on one line, for messages.
func readSome(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\n", " "))
}
