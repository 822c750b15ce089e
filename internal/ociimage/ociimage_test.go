package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readLayout reads an OCI layout tarball into a map of its files.
func readLayout(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
}

// blob reads a blob by digest and checks that its content has that digest.
func blob(t *testing.T, files map[string][]byte, digest string) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
	if !ok {
		t.Fatalf("blob %s missing", digest)
	}
	sum := sha256.Sum256(b)
	if "sha256:"+hex.EncodeToString(sum[:]) != digest {
		t.Fatalf("blob %s has digest %x", digest, sum)
	}
	return b
}

// TestWrite: the tarball is an OCI image layout whose index names each
// image, whose blobs match their digests, and whose layer holds the files
// with their modes and owners; the same inputs give the same bytes.
func TestWrite(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := Image{
		Name:       "example.com/team/app:1.0",
		Files:      append(Base(), File{Path: "/app", Mode: 0o755, Source: bin}, File{Path: "/usr/bin/tool", Mode: fs.ModeSymlink | 0o777, Link: "/app"}),
		User:       "65532:65532",
		Entrypoint: []string{"/app"},
		Env:        BaseEnv,
	}
	var a, b bytes.Buffer
	if err := Write(&a, img); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same image differ: images must be reproducible")
	}
	files := readLayout(t, a.Bytes())
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", files["oci-layout"])
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", files["index.json"], err)
	}
	d := index.Manifests[0]
	if d.Annotations[AnnotationContainerdName] != img.Name || d.Annotations[AnnotationRefName] != "1.0" || d.Platform == nil || d.Platform.OS != "linux" {
		t.Errorf("index entry %+v, want the image's name, tag 1.0 and linux", d)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(blob(t, files, d.Digest), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	var cfg ConfigFile
	if err := json.Unmarshal(blob(t, files, manifest.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || cfg.Config.Entrypoint[0] != "/app" || cfg.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Errorf("config %+v", cfg)
	}
	layer := blob(t, files, manifest.Layers[0].Digest)
	got := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	for name, want := range map[string]struct {
		typ  byte
		mode int64
		uid  int
	}{
		"app":           {tar.TypeReg, 0o755, 0},
		"usr/":          {tar.TypeDir, 0o755, 0},
		"usr/bin/tool":  {tar.TypeSymlink, 0o777, 0},
		"tmp/":          {tar.TypeDir, 0o1777, 0},
		"home/nonroot/": {tar.TypeDir, 0o700, NonRootUID},
		"etc/passwd":    {tar.TypeReg, 0o644, 0},
	} {
		h := got[name]
		if h == nil || h.Typeflag != want.typ || h.Mode != want.mode || h.Uid != want.uid {
			t.Errorf("layer entry %s = %+v, want type %c mode %o uid %d", name, h, want.typ, want.mode, want.uid)
		}
	}
}

// TestParseDockerfile reads this repository's Dockerfiles: the final
// stage's base, copy, user and entrypoint.
func TestParseDockerfile(t *testing.T) {
	for _, bin := range []string{"sidecar", "injector"} {
		d, err := ParseDockerfile(filepath.Join("..", "..", "Dockerfile."+bin))
		if err != nil {
			t.Fatal(err)
		}
		if d.From != BaseImage || d.Copies["/"+bin] != "/out/"+bin || d.User != "65532:65532" || len(d.Entrypoint) != 1 || d.Entrypoint[0] != "/"+bin {
			t.Errorf("Dockerfile.%s: %+v", bin, d)
		}
	}
	bad := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(bad, []byte("FROM "+BaseImage+"\nCOPY --from=build /out/x /x\nRUN echo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseDockerfile(bad); err == nil || !strings.Contains(err.Error(), "RUN in the final stage") {
		t.Errorf("ParseDockerfile of a final stage with RUN: %v, want an error naming it", err)
	}
}
