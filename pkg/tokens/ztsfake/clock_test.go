package ztsfake_test

import (
	"cmp"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/AthenZ/athenz/libs/go/zmssvctoken"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// TestNTokenLifetime: the N-token returned with an instance certificate
// lives NTokenLifetime (default one day, as ZTS), not as long as the
// certificate, both on register and on refresh.
func TestNTokenLifetime(t *testing.T) {
	tests := []struct {
		name     string
		opts     ztsfake.Options
		wantLife time.Duration
	}{
		{name: "default: one day with 7-day certificates", opts: ztsfake.Options{CertLifetime: 7 * 24 * time.Hour}, wantLife: 24 * time.Hour},
		{name: "default: one day with 10-minute certificates", opts: ztsfake.Options{CertLifetime: 10 * time.Minute}, wantLife: 24 * time.Hour},
		{name: "set", opts: ztsfake.Options{NTokenLifetime: 90 * time.Minute}, wantLife: 90 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now, clock := fixedNow()
			tc.opts.Now = clock
			s := ztsfake.NewTest(t, tc.opts)
			key, keyPEM := newECKey(t)
			csr := newCSR(t, key, podSpec)
			id, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
				Provider: "k8s.provider", Domain: "client", Service: "api", AttestationData: "token", Csr: csr, Token: new(true),
			})
			if err != nil {
				t.Fatalf("register: %v", err)
			}
			checkNTokenLife(t, s, string(id.ServiceToken), now, tc.wantLife)
			certLife := cmp.Or(tc.opts.CertLifetime, ztsfake.DefaultCertLifetime)
			cert := parseCert(t, s, id.X509Certificate, 0)
			if got := cert.NotAfter.Sub(now); got != certLife {
				t.Errorf("certificate lives %v, want %v", got, certLife)
			}

			refreshed, err := certClient(t, s, []byte(id.X509Certificate), keyPEM).PostInstanceRefreshInformation("k8s.provider", "client", "api", "pod-1",
				&zts.InstanceRefreshInformation{Csr: newCSR(t, key, podSpec), Token: new(true)})
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			checkNTokenLife(t, s, string(refreshed.ServiceToken), now, tc.wantLife)
		})
	}
}

func checkNTokenLife(t *testing.T, s *ztsfake.Server, tok string, now time.Time, want time.Duration) {
	t.Helper()
	v, err := zmssvctoken.NewPubKeyTokenValidator(s.SigningPublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(tok); err != nil {
		t.Fatalf("N-token %q does not validate: %v", tok, err)
	}
	f, _, _ := tokenFields(t, tok)
	issued, _ := strconv.ParseInt(f["t"], 10, 64)
	expires, _ := strconv.ParseInt(f["e"], 10, 64)
	if issued != now.Unix() || time.Duration(expires-issued)*time.Second != want {
		t.Errorf("N-token t=%s e=%s: lives %v from %v, want %v from %v", f["t"], f["e"], time.Duration(expires-issued)*time.Second, time.Unix(issued, 0), want, now)
	}
}

// TestClockOffset: with ZTS's clock ahead of or behind the caller's, every
// time the fake writes (token issue and expiry, certificate validity) is
// ZTS's; lifetimes stay what they are; and the fake sends no Date header,
// as ZTS sends none by default.
func TestClockOffset(t *testing.T) {
	for _, offset := range []time.Duration{2 * time.Hour, -2 * time.Hour, 0} {
		t.Run(offset.String(), func(t *testing.T) {
			now, clock := fixedNow()
			s := ztsfake.NewTest(t, ztsfake.Options{Now: clock})
			s.Grant("prov", "reader", "client.api")
			// ZTS judges client certificates by its own clock: one issued
			// before the offset would not be valid yet with ZTS 2 h
			// behind, so the client's is issued after.
			s.SetClockOffset(offset)
			zc := newClient(t, s, "client", "api")
			ztsNow := now.Add(offset)

			rt, err := zc.GetRoleToken("prov", "reader", nil, int32p(3*3600), "")
			if err != nil {
				t.Fatalf("GetRoleToken: %v", err)
			}
			f, _, _ := tokenFields(t, rt.Token)
			if f["t"] != strconv.FormatInt(ztsNow.Unix(), 10) || rt.ExpiryTime != ztsNow.Add(3*time.Hour).Unix() {
				t.Errorf("role token t=%s expiryTime=%d, want ZTS's clock %d and %d", f["t"], rt.ExpiryTime, ztsNow.Unix(), ztsNow.Add(3*time.Hour).Unix())
			}

			at, err := zc.PostAccessTokenRequest("grant_type=client_credentials&scope=prov:role.reader&expires_in=10800")
			if err != nil {
				t.Fatalf("PostAccessTokenRequest: %v", err)
			}
			claims := decodeJWT(t, at.Access_token).claims
			if iat, exp := int64(claims["iat"].(float64)), int64(claims["exp"].(float64)); iat != ztsNow.Unix() || exp != ztsNow.Add(3*time.Hour).Unix() || *at.Expires_in != 10800 {
				t.Errorf("access token iat=%d exp=%d expires_in=%d, want %d, %d and 10800", iat, exp, *at.Expires_in, ztsNow.Unix(), ztsNow.Add(3*time.Hour).Unix())
			}

			certPEM, _, err := s.IssueIdentity("client", "web")
			if err != nil {
				t.Fatal(err)
			}
			cert := parseCertAt(t, s, string(certPEM), 0, ztsNow)
			if want := ztsNow.Add(ztsfake.DefaultCertLifetime); !cert.NotAfter.Equal(want) {
				t.Errorf("certificate NotAfter %v, want ZTS's now + lifetime %v", cert.NotAfter, want)
			}

			res, err := s.Client().Get(s.URL() + "/status")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if d, ok := res.Header["Date"]; ok {
				t.Errorf("answer has a Date header %q; real ZTS sends none", d)
			}
			if res.StatusCode != http.StatusOK {
				t.Errorf("GET /status: %d", res.StatusCode)
			}
		})
	}
}
