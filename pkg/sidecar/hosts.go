package sidecar

import (
	"fmt"
	"net"
	"strings"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// parseHostList parses a host list (ATHENZ_PROXY_ALLOWED_HOSTS,
// ATHENZ_PROXY_TLS_HOSTS): tokens.ParseHostList.
func parseHostList(list string) ([]string, error) { return tokens.ParseHostList(list) }

// hostMatcher holds a host list: the upstreams that may receive tokens,
// or those the proxy speaks TLS to.
type hostMatcher struct {
	entries []tokens.HostPattern
}

func newHostMatcher(list []string) (hostMatcher, error) {
	var m hostMatcher
	for _, s := range list {
		e, err := tokens.ParseHostPattern(s)
		if err != nil {
			return hostMatcher{}, fmt.Errorf("entry %q: %w", s, err)
		}
		m.entries = append(m.entries, e)
	}
	return m, nil
}

// allowed reports whether a request to hostport (a URL's Host) with the
// given scheme may carry a token: an empty list allows every host.
func (m hostMatcher) allowed(scheme, hostport string) bool {
	return len(m.entries) == 0 || m.match(scheme, hostport)
}

// match reports whether hostport (a URL's Host; without a port, the
// scheme's) is in the list; an empty list matches nothing.
func (m hostMatcher) match(scheme, hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, e := range m.entries {
		if e.Port != "" && e.Port != port {
			continue
		}
		if e.Any {
			return true
		}
		if e.Suffix {
			if strings.HasSuffix(host, e.Host) {
				return true
			}
			continue
		}
		if host == e.Host {
			return true
		}
	}
	return false
}
