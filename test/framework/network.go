package framework

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// The test node's addresses, all from 198.18.0.0/15 (RFC 2544's range for
// benchmarking, never routed on the Internet). Nothing in it leaves this
// machine: the host has a blackhole route for the whole range, IP
// forwarding stays off, there is no masquerade, and Pods get a route for
// the range only, no default route.
var (
	// ReservedRange is the whole range the tests use.
	ReservedRange = mustCIDR("198.18.0.0/15")
	// PodCIDR holds the Pods' IPs; the bridge has its first address.
	PodCIDR = mustCIDR("198.18.0.0/24")
	// ServiceCIDR holds the Services' cluster IPs.
	ServiceCIDR = mustCIDR("198.18.1.0/24")
	// HostIP is the host's address on the bridge: the node's IP, where
	// kube-apiserver, the kubelet and the fake ZTS listen for the Pods.
	HostIP = FirstIP(PodCIDR)
)

// BridgeName is the test node's Linux bridge: the Pods' veths join it.
const BridgeName = "athenz0"

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// Network is the test node's network on the host: the bridge with
// HostIP, a link route for ServiceCIDR (so that the host's own
// connections to a cluster IP leave through the bridge, where kube-proxy's
// rules rewrite them) and the blackhole route for ReservedRange.
type Network struct{}

// SetupNetwork creates the bridge and the routes. AcquireHost, its
// caller, has removed any that a killed run left.
func SetupNetwork(ctx context.Context) (*Network, error) {
	n := &Network{}
	hostCIDR := &net.IPNet{IP: HostIP, Mask: PodCIDR.Mask}
	for _, args := range [][]string{
		{"link", "add", BridgeName, "type", "bridge"},
		{"addr", "add", hostCIDR.String(), "dev", BridgeName},
		{"link", "set", BridgeName, "up"},
		{"route", "add", ServiceCIDR.String(), "dev", BridgeName, "scope", "link"},
		{"route", "add", "blackhole", ReservedRange.String()},
	} {
		if err := ip(ctx, args...); err != nil {
			_ = n.Teardown(ctx)
			return nil, err
		}
	}
	return n, nil
}

// Teardown removes the bridge (with its address and link routes) and the
// blackhole route; what is already gone is no error.
func (n *Network) Teardown(ctx context.Context) error {
	var errs []string
	if err := ip(ctx, "link", "del", BridgeName); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err.Error())
	}
	if err := ip(ctx, "route", "del", "blackhole", ReservedRange.String()); err != nil && !strings.Contains(err.Error(), "No such process") {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing the test network: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ip runs iproute2's ip.
func ip(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
