// Command ociimage writes the release images, athenz-injector and
// athenz-sidecar, as one OCI image layout tarball from binaries that
// `make build` wrote, without a container engine: each image is what its
// Dockerfile's final stage describes (internal/ociimage). `make images-oci`
// runs it; load the result with `docker load`, `ctr images import` or
// `skopeo copy oci-archive:...`.
//
//	go run ./hack/ociimage -bin-dir bin -tag v0.2.0 -out bin/images.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/athenz-injector/athenz-injector/internal/ociimage"
)

func main() {
	binDir := flag.String("bin-dir", "bin", "directory with the injector and sidecar binaries")
	repo := flag.String("repository", "ghcr.io/athenz-injector", "image repository prefix")
	tag := flag.String("tag", "dev", "image tag")
	out := flag.String("out", "bin/images.tar", "the OCI image layout tarball to write")
	root := flag.String("root", ".", "the repository (where the Dockerfiles are)")
	flag.Parse()
	if err := run(*root, *binDir, *repo, *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(root, binDir, repo, tag, out string) error {
	images, err := ociimage.ReleaseImages(root, binDir, map[string]string{
		repo + "/athenz-injector:" + tag: "injector",
		repo + "/athenz-sidecar:" + tag:  "sidecar",
	})
	if err != nil {
		return err
	}
	if err := ociimage.WriteFile(out, images...); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s/athenz-injector:%s and %s/athenz-sidecar:%s\n", out, repo, tag, repo, tag)
	return nil
}
