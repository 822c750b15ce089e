package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keys of TokenReview's status.user.extra for a token bound to a Pod (the
// API server's serviceaccount.PodNameKey and PodUIDKey).
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// serviceAccountPrefix starts the user name of a service account token.
const serviceAccountPrefix = "system:serviceaccount:"

// reviewed is what the API server says about an accepted token.
type reviewed struct {
	namespace, serviceAccount string
	podName, podUID           string
}

// attestationToken reads the service account token from the attestation
// data: the bare JWT (for an HTTP provider) or {"identityToken":"<JWT>"}
// (the format of ZTS's built-in Kubernetes provider).
func attestationToken(data string) (string, error) {
	data = strings.TrimSpace(data)
	if strings.HasPrefix(data, "{") {
		var v struct {
			IdentityToken string `json:"identityToken"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return "", badRequest(`attestationData: neither a service account token nor {"identityToken":"<token>"}: %v`, err)
		}
		if v.IdentityToken == "" {
			return "", badRequest(`attestationData: {"identityToken":...} has no token`)
		}
		data = strings.TrimSpace(v.IdentityToken)
	}
	if strings.Count(data, ".") != 2 || strings.ContainsAny(data, " \t\r\n") {
		return "", badRequest(`attestationData: not a service account token (a JWT), bare or as {"identityToken":"<token>"}`)
	}
	return data, nil
}

// review asks the API server about token for the configured audience.
func (h *Handler) review(ctx context.Context, token string) (*reviewed, error) {
	tr, err := h.o.TokenReviews.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{h.o.Audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, unavailable("token review: asking the API server: %v", err)
	}
	st := tr.Status
	if !st.Authenticated {
		return nil, h.explain(ctx, token, st.Error)
	}
	if !slices.Contains(st.Audiences, h.o.Audience) {
		return nil, refuse("audience", "the API server accepted the token for audiences %q, not for %q", st.Audiences, h.o.Audience)
	}
	ns, sa, ok := strings.Cut(strings.TrimPrefix(st.User.Username, serviceAccountPrefix), ":")
	if !strings.HasPrefix(st.User.Username, serviceAccountPrefix) || !ok || ns == "" || sa == "" {
		return nil, refuse("service account", "the token is for user %q, not a service account (system:serviceaccount:<namespace>:<name>)", st.User.Username)
	}
	r := &reviewed{namespace: ns, serviceAccount: sa}
	if v := st.User.Extra[extraPodName]; len(v) == 1 {
		r.podName = v[0]
	}
	if v := st.User.Extra[extraPodUID]; len(v) == 1 {
		r.podUID = v[0]
	}
	if r.podName == "" || r.podUID == "" {
		return nil, refuse("pod binding", "the token of service account %s/%s is not bound to a Pod: attest with the Pod's projected service account token (a serviceAccountToken volume), not a Secret's or a TokenRequest's without a Pod", ns, sa)
	}
	return r, nil
}

// unverifiedClaims are the claims of a refused token that explain the
// refusal. They are read without checking the signature, only to name the
// check that failed: the API server has already said no.
type unverifiedClaims struct {
	Expiry   int64       `json:"exp"`
	Audience audiences   `json:"aud"`
	K8S      *boundClaim `json:"kubernetes.io"`
}

type boundClaim struct {
	Namespace string `json:"namespace"`
	Pod       *struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"pod"`
}

// audiences is a JWT "aud": one string or a list.
type audiences []string

func (a *audiences) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = []string{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*a = list
	return nil
}

// explain turns a TokenReview refusal into the named check that failed:
// an expired token, another audience, a deleted Pod, or else the API
// server's own words.
func (h *Handler) explain(ctx context.Context, token, apiErr string) error {
	said := apiErr
	if said == "" {
		said = "no reason given"
	}
	var c unverifiedClaims
	parts := strings.Split(token, ".")
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && json.Unmarshal(b, &c) == nil {
		now := h.o.Now()
		switch {
		case c.Expiry != 0 && !now.Before(time.Unix(c.Expiry, 0)):
			return refuse("expired token", "the service account token expired at %s (API server: %s)",
				time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339), said)
		case len(c.Audience) > 0 && !slices.Contains(c.Audience, h.o.Audience):
			return refuse("audience", "the service account token is for audiences %q, not %q (API server: %s)",
				[]string(c.Audience), h.o.Audience, said)
		case c.K8S != nil && c.K8S.Pod != nil && c.K8S.Namespace != "":
			// A token bound to a Pod that is gone is "invalidated".
			if _, err := h.pod(ctx, c.K8S.Namespace, c.K8S.Pod.Name, c.K8S.Pod.UID, true); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.check == checkPodDeleted {
					ae.msg += " (API server: " + said + ")"
					return ae
				}
			}
		}
	}
	return refuse("token", "the API server does not accept the service account token: %s", said)
}
