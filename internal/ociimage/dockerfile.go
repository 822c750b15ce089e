package ociimage

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Dockerfile is what the final stage of a release Dockerfile says about
// the image: its base, the files it copies from the build stage, its user
// and entrypoint.
type Dockerfile struct {
	From       string
	Copies     map[string]string // destination in the image -> source in the build stage
	User       string
	Entrypoint []string
}

// ParseDockerfile reads the final stage of the Dockerfile at path. It
// understands the instructions this repository's Dockerfiles use in
// their final stage (FROM, COPY --from, USER, ENTRYPOINT in exec form) and
// refuses any other, so that a Dockerfile change that this package would
// not mirror fails loudly.
func ParseDockerfile(path string) (*Dockerfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d *Dockerfile
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			from := strings.Fields(rest)
			for len(from) > 0 && strings.HasPrefix(from[0], "--") {
				from = from[1:]
			}
			if len(from) == 0 {
				return nil, fmt.Errorf("%s:%d: FROM without an image", path, n+1)
			}
			d = &Dockerfile{From: from[0], Copies: map[string]string{}}
			continue
		}
		if d == nil {
			return nil, fmt.Errorf("%s:%d: %s before FROM", path, n+1, instr)
		}
		if len(d.Copies) == 0 && d.User == "" && d.Entrypoint == nil && isBuildStage(line) {
			continue // a build stage: what it runs does not reach the image
		}
		switch strings.ToUpper(instr) {
		case "COPY":
			args := strings.Fields(rest)
			var plain []string
			for _, a := range args {
				if !strings.HasPrefix(a, "--") {
					plain = append(plain, a)
				}
			}
			if len(plain) != 2 {
				return nil, fmt.Errorf("%s:%d: COPY with %d paths, want a source and a destination", path, n+1, len(plain))
			}
			d.Copies[plain[1]] = plain[0]
		case "USER":
			d.User = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.Entrypoint); err != nil {
				return nil, fmt.Errorf("%s:%d: ENTRYPOINT must be in exec form: %w", path, n+1, err)
			}
		default:
			return nil, fmt.Errorf("%s:%d: %s in the final stage: ociimage does not mirror it", path, n+1, instr)
		}
	}
	if d == nil {
		return nil, fmt.Errorf("%s: no FROM", path)
	}
	return d, nil
}

// isBuildStage reports whether line belongs to a build stage (instructions
// that only a build stage uses), so that ParseDockerfile keeps only the
// final stage.
func isBuildStage(line string) bool {
	instr, rest, _ := strings.Cut(line, " ")
	switch strings.ToUpper(instr) {
	case "ARG", "WORKDIR", "RUN", "ENV":
		return true
	case "COPY":
		return !strings.Contains(rest, "--from=")
	}
	return false
}

// Image is the image the Dockerfile describes, named name, with each copied
// path's content taken from binaries (build-stage source -> local file):
// Base's files, the copies (mode 0755, owned by root, as COPY does), the
// user and entrypoint, distroless's environment and working directory.
func (d *Dockerfile) Image(name string, binaries map[string]string) (Image, error) {
	if d.From != BaseImage {
		return Image{}, fmt.Errorf("the Dockerfile's base is %s; ociimage mirrors only %s", d.From, BaseImage)
	}
	files := Base()
	for dst, src := range d.Copies {
		local, ok := binaries[src]
		if !ok {
			return Image{}, fmt.Errorf("the Dockerfile copies %s, which was not given", src)
		}
		files = append(files, File{Path: dst, Mode: 0o755, Source: local})
	}
	return Image{
		Name:       name,
		Files:      files,
		User:       d.User,
		Entrypoint: d.Entrypoint,
		Env:        BaseEnv,
		WorkingDir: BaseWorkingDir,
	}, nil
}

// ReleaseImages are the images of this repository's Dockerfiles: for each
// image name, Dockerfile.<binary> in root, with /out/<binary> of the build
// stage taken from binDir/<binary>.
func ReleaseImages(root, binDir string, binaries map[string]string) ([]Image, error) {
	var images []Image
	for name, bin := range binaries {
		df, err := ParseDockerfile(filepath.Join(root, "Dockerfile."+bin))
		if err != nil {
			return nil, err
		}
		img, err := df.Image(name, map[string]string{"/out/" + bin: filepath.Join(binDir, bin)})
		if err != nil {
			return nil, fmt.Errorf("the image of Dockerfile.%s: %w", bin, err)
		}
		images = append(images, img)
	}
	return images, nil
}
