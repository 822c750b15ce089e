package tokens

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/ardielle/ardielle-go/rdl"
)

// ClientOptions configures a Client. The zero value is not usable: URL is
// required.
type ClientOptions struct {
	// URL is the ZTS base URL, e.g. https://zts.example.com:4443/zts/v1.
	URL string
	// Transport carries the calls: it holds the TLS settings (CA, client
	// certificate) and, in key-file mode, adds the N-token header.
	// Default: http.DefaultTransport.
	Transport http.RoundTripper
	// Timeout bounds each call. Default: 10 s.
	Timeout time.Duration
	// Clock stamps tokens with the time they were asked for. Default: RealClock.
	Clock Clock
	// Skew, when set, records the clock skew between ZTS and this node
	// measured at every token. Default: not recorded (each token is still
	// timed by ZTS's clock).
	Skew *ClockSkew
}

// Client gets role tokens and access tokens from ZTS through the Athenz Go
// client, and turns its answers into Tokens and its failures into
// *ZTSError, ErrZTSUnavailable or ErrZTSTimeout.
type Client struct {
	url       string
	transport http.RoundTripper
	timeout   time.Duration
	clock     Clock
	skew      *ClockSkew
}

// CheckZTSURL checks a ZTS base URL as the sidecar's settings take it:
// https, a host, and no query or fragment. NewClient is looser (it takes
// http too, for a fake ZTS in a test).
func CheckZTSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("want https://host[:port]/zts/v1")
	}
	return nil
}

// NewClient returns a Client for opts.
func NewClient(opts ClientOptions) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("zts url %q: want https://host[:port]/zts/v1", opts.URL)
	}
	c := &Client{url: opts.URL, transport: opts.Transport, timeout: opts.Timeout, clock: opts.Clock, skew: opts.Skew}
	if c.transport == nil {
		c.transport = http.DefaultTransport
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.clock == nil {
		c.clock = RealClock{}
	}
	return c, nil
}

// Fetch gets a fresh token for key from ZTS. It is the cache's FetchFunc.
func (c *Client) Fetch(ctx context.Context, key Key) (Token, error) {
	switch key.Kind {
	case KindRoleToken:
		return c.RoleToken(ctx, key)
	case KindAccessToken:
		return c.AccessToken(ctx, key)
	}
	return Token{}, fmt.Errorf("unknown token kind %v", key.Kind)
}

// RoleToken calls GET /domain/{domain}/token. The token's Expiry is on
// this node's clock: its lifetime by ZTS's clock (expiryTime less the
// token's issue time t=) counted from when the request was sent, so a
// clock skew between ZTS and the node neither shortens nor stretches it.
func (c *Client) RoleToken(ctx context.Context, key Key) (Token, error) {
	zc, cancel := c.ztsClient(ctx)
	defer cancel()
	started := c.clock.Now()
	rt, err := zc.GetRoleToken(zts.DomainName(key.Domain), zts.EntityList(key.Roles),
		seconds32(key.MinExpiry), seconds32(key.MaxExpiry), zts.EntityName(key.ProxyForPrincipal))
	if err != nil {
		return Token{}, c.convertError(ctx, "role token", err)
	}
	if rt == nil || rt.Token == "" {
		return Token{}, fmt.Errorf("role token: %w: empty answer", ErrZTSUnavailable)
	}
	expiry := time.Unix(rt.ExpiryTime, 0)
	if issued, _, ok := AthenzTokenTimes(rt.Token); ok {
		c.skew.Observe(issued, started, c.clock.Now())
		expiry = started.Add(expiry.Sub(issued))
	}
	return Token{Value: rt.Token, Expiry: expiry, Obtained: started}, nil
}

// AccessToken calls POST /oauth2/token with the client_credentials grant.
func (c *Client) AccessToken(ctx context.Context, key Key) (Token, error) {
	zc, cancel := c.ztsClient(ctx)
	defer cancel()
	form := url.Values{}
	form.Set("grant_type", "client_credentials")
	form.Set("scope", key.Scope())
	if key.MaxExpiry > 0 {
		form.Set("expires_in", strconv.FormatInt(int64(key.MaxExpiry/time.Second), 10))
	}
	if key.ProxyForPrincipal != "" {
		form.Set("proxy_for_principal", key.ProxyForPrincipal)
	}
	started := c.clock.Now()
	at, err := zc.PostAccessTokenRequest(zts.AccessTokenRequest(form.Encode()))
	if err != nil {
		return Token{}, c.convertError(ctx, "access token", err)
	}
	if at == nil || at.Access_token == "" || at.Expires_in == nil || *at.Expires_in <= 0 {
		return Token{}, fmt.Errorf("access token: %w: answer without access_token or expires_in", ErrZTSUnavailable)
	}
	lifetime := time.Duration(*at.Expires_in) * time.Second
	if issued, expires, ok := jwtTimes(at.Access_token); ok {
		c.skew.Observe(issued, started, c.clock.Now())
		// exp and iat are ZTS's; their difference is the lifetime on its
		// clock, which expires_in should be too. Take the shorter.
		lifetime = min(lifetime, expires.Sub(issued))
	}
	// Never report more than was asked for, whatever ZTS says: the caller
	// sized its own refresh on the expiry it sent.
	if key.MaxExpiry > 0 && lifetime > key.MaxExpiry {
		lifetime = key.MaxExpiry
	}
	// Counting from before the call keeps the expiry on the safe side.
	return Token{Value: at.Access_token, Expiry: started.Add(lifetime), Obtained: started, Scope: at.Scope}, nil
}

// ztsClient builds a per-call Athenz client whose requests carry ctx (the
// Athenz client takes no context of its own) and the call timeout.
func (c *Client) ztsClient(ctx context.Context) (zts.ZTSClient, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	zc := zts.NewClient(c.url, ctxTransport{ctx: ctx, base: c.transport})
	zc.DisableRedirect = true
	return zc, cancel
}

// convertError maps the Athenz client's errors to ours. Messages from ZTS
// are kept (they say which role or domain is wrong); transport errors are
// summarised without the request URL's query.
func (c *Client) convertError(ctx context.Context, what string, err error) error {
	var re rdl.ResourceError
	if errors.As(err, &re) {
		return &ZTSError{Status: re.Code, Message: truncateMessage(re.Message)}
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return fmt.Errorf("%s: %w after %s", what, ErrZTSTimeout, c.timeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s: %w after %s", what, ErrZTSTimeout, c.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w: %w", what, ErrZTSUnavailable, err)
}

func truncateMessage(s string) string {
	const limit = 512
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}

func seconds32(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	s := int32(d / time.Second)
	return &s
}

// ctxTransport attaches a context to every request of an Athenz client.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}
