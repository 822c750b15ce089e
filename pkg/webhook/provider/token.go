package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

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

// CheckToken names the refusal of a token the API server does not accept.
const CheckToken = "token"

// MsgTokenRefused is the whole answer to every attestation token the API
// server does not accept, whatever the reason: expired, for another
// audience, bound to a deleted Pod, signed by another issuer or not at all.
const MsgTokenRefused = CheckToken + ": the attestation is not a service account token this cluster accepts for this provider " +
	"(expired, for another audience, revoked, or not issued by this cluster)"

// apiServerSaid is the API server's reason, for the log.
func apiServerSaid(reason string) string {
	if reason == "" {
		return "no reason given"
	}
	return reason
}

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
		// One answer for every token the API server refuses: nothing is
		// read from it, and nothing is looked up on its behalf, so a
		// forged token learns nothing and costs one TokenReview. Why the
		// API server refused it goes to the log only.
		return nil, &apiError{status: http.StatusForbidden, check: CheckToken, msg: MsgTokenRefused, logReason: apiServerSaid(st.Error)}
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
