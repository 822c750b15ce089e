package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// PodStatus is one Pod as `kubectl athenz status` shows it.
type PodStatus struct {
	Namespace, Name string
	// Injected is false for a Pod that opted in and has no sidecar.
	Injected bool
	Status   webhook.Status
	// Sidecar is the state of the sidecar container: "ready", "not ready",
	// "done" (init-only), "missing".
	Sidecar  string
	Restarts int32
	// Problems are why the Pod is flagged: outdated (another image or
	// profile generation than its profile gives now) or unhealthy.
	Problems []string
}

// Flag is the Pod's one-word summary: OK, OUTDATED, UNHEALTHY or
// NOT-INJECTED.
func (p PodStatus) Flag() string {
	switch {
	case !p.Injected:
		return "NOT-INJECTED"
	case len(p.Problems) == 0:
		return "OK"
	}
	var flags []string
	for _, pr := range p.Problems {
		f := "UNHEALTHY"
		if strings.HasPrefix(pr, "outdated") {
			f = "OUTDATED"
		}
		if len(flags) == 0 || flags[len(flags)-1] != f {
			flags = append(flags, f)
		}
	}
	return strings.Join(flags, ",")
}

// StatusOptions choose the Pods of Status.
type StatusOptions struct {
	// Namespace limits the list to one namespace; "" lists every one.
	Namespace string
	// Injector is the installed injector (FindInjector).
	Injector Injector
}

// Status lists the Pods that carry athenz.io/status or opted in with
// athenz.io/inject: "true", sorted by namespace and name.
func Status(ctx context.Context, c client.Reader, o StatusOptions) ([]PodStatus, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(o.Namespace)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	profiles := map[string]*v1alpha1.SidecarProfile{}
	var out []PodStatus
	for i := range pods.Items {
		pod := &pods.Items[i]
		raw, injected := pod.Annotations[webhook.AnnotationStatus]
		if !injected && pod.Annotations[webhook.AnnotationInject] != "true" {
			continue
		}
		ps := PodStatus{Namespace: pod.Namespace, Name: pod.Name, Injected: injected}
		if !injected {
			ps.Problems = []string{"opted in but not injected: run kubectl athenz why pod/" + pod.Name}
			out = append(out, ps)
			continue
		}
		if err := json.Unmarshal([]byte(raw), &ps.Status); err != nil {
			ps.Problems = append(ps.Problems, "unhealthy: "+webhook.AnnotationStatus+" is not JSON: "+err.Error())
		}
		ps.Sidecar, ps.Restarts = sidecarState(pod, ps.Status)
		if ps.Sidecar != "ready" && ps.Sidecar != "done" {
			ps.Problems = append(ps.Problems, "unhealthy: sidecar "+ps.Sidecar)
		}
		if ps.Restarts > 0 {
			ps.Problems = append(ps.Problems, fmt.Sprintf("unhealthy: sidecar restarted %d times", ps.Restarts))
		}
		ps.Problems = append(ps.Problems, outdated(ctx, c, ps.Status, profiles, o.Injector.DefaultImage)...)
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// sidecarState reads the sidecar container's status.
func sidecarState(pod *corev1.Pod, st webhook.Status) (string, int32) {
	name := webhook.SidecarName
	if st.InitOnly {
		name = webhook.InitName
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if cs.Name != name {
			continue
		}
		switch {
		case st.InitOnly && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			return "done", cs.RestartCount
		case cs.Ready:
			return "ready", cs.RestartCount
		case pod.Status.Phase == corev1.PodSucceeded && cs.State.Terminated != nil:
			return "done", cs.RestartCount
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			return "not ready (" + cs.State.Waiting.Reason + ")", cs.RestartCount
		}
		return "not ready", cs.RestartCount
	}
	if pod.Spec.NodeName == "" {
		return "not ready (not scheduled)", 0
	}
	return "missing", 0
}

// outdated compares what the Pod got with what its profile gives now.
func outdated(ctx context.Context, c client.Reader, st webhook.Status, cache map[string]*v1alpha1.SidecarProfile, defaultImage string) []string {
	p, ok := cache[st.Profile]
	if !ok {
		ns, name, _ := strings.Cut(st.Profile, "/")
		var got v1alpha1.SidecarProfile
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &got); err == nil {
			p = &got
		}
		cache[st.Profile] = p
	}
	if p == nil {
		return []string{"outdated: SidecarProfile " + st.Profile + " no longer exists"}
	}
	var out []string
	want := p.Spec.Sidecar.Image
	if want == "" {
		want = defaultImage
	}
	if want != "" && st.Image != want {
		out = append(out, "outdated: image "+st.Image+", the profile gives "+want)
	}
	if st.ProfileGeneration != 0 && p.Generation > st.ProfileGeneration {
		out = append(out, "outdated: profile changed since (generation "+strconv.FormatInt(st.ProfileGeneration, 10)+" -> "+strconv.FormatInt(p.Generation, 10)+")")
	}
	if v := p.Status.InjectorVersion; v != "" && st.Version != "" && st.Version != v {
		out = append(out, "outdated: injected by injector "+st.Version+", the profile's injector is "+v+" now")
	}
	if st.Revision != p.Spec.Revision {
		out = append(out, fmt.Sprintf("outdated: revision %q, the profile now has %q", st.Revision, p.Spec.Revision))
	}
	return out
}

// WriteStatus prints the Pods as a table, then a summary by sidecar image,
// profile and revision.
func WriteStatus(w io.Writer, pods []PodStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tPROFILE\tREVISION\tSIDECAR IMAGE\tINJECTOR\tSIDECAR\tSTATUS")
	type group struct{ image, profile, revision string }
	counts := map[group][2]int{} // all, flagged
	for _, p := range pods {
		st := p.Status
		sidecar := p.Sidecar
		if !p.Injected {
			sidecar = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, dash(st.Profile), dash(st.Revision), dash(st.Image), dash(st.Version), sidecar, p.Flag())
		if p.Injected {
			g := group{st.Image, st.Profile, st.Revision}
			c := counts[g]
			c[0]++
			if len(p.Problems) > 0 {
				c[1]++
			}
			counts[g] = c
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var problems []string
	for _, p := range pods {
		for _, pr := range p.Problems {
			problems = append(problems, "  "+p.Namespace+"/"+p.Name+": "+pr)
		}
	}
	groups := make([]group, 0, len(counts))
	for g := range counts {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool { return fmt.Sprint(groups[i]) < fmt.Sprint(groups[j]) })
	fmt.Fprintln(w, "\nPods by sidecar image, profile and revision:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SIDECAR IMAGE\tPROFILE\tREVISION\tPODS\tFLAGGED")
	for _, g := range groups {
		c := counts[g]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\n", g.image, g.profile, dash(g.revision), c[0], c[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(problems) > 0 {
		fmt.Fprintln(w, "\nFlagged:")
		fmt.Fprintln(w, strings.Join(problems, "\n"))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
