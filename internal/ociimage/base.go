package ociimage

import (
	"io/fs"
	"os"
)

// The base image the Dockerfiles name, mirrored: distroless static:nonroot
// (gcr.io/distroless/static:nonroot) cannot be pulled here, so Base
// writes its files, and BaseConfig its settings.
const (
	BaseImage = "gcr.io/distroless/static:nonroot"
	// NonRootUID is distroless's "nonroot" user and group.
	NonRootUID = 65532
	// hostCABundle is copied into the image as distroless's CA bundle
	// (Debian's ca-certificates, which distroless also ships).
	hostCABundle = "/etc/ssl/certs/ca-certificates.crt"
)

// BaseEnv is distroless static's environment.
var BaseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SSL_CERT_FILE=" + hostCABundle,
}

// BaseWorkingDir is distroless static:nonroot's working directory.
const BaseWorkingDir = "/home/nonroot"

// Base is distroless static:nonroot's file system: users root, nobody and
// nonroot (65532), their groups, /tmp, the home directories and the CA
// bundle (this machine's, when it has one).
func Base() []File {
	files := []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n")},
		{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte("hosts: files dns\n")},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: NonRootUID, GID: NonRootUID},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	if _, err := os.Stat(hostCABundle); err == nil {
		files = append(files, File{Path: hostCABundle, Mode: 0o644, Source: hostCABundle})
	}
	return files
}
