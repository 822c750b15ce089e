package identity

import "github.com/athenz-injector/athenz-injector/pkg/sidecar/atomicfile"

// fileWrite is one file to replace in the identity directory.
type fileWrite = atomicfile.File

// writeFilesAtomic replaces the files of dir together, so that a reader
// never sees a partial file and a certificate and its new key change
// within two renames of each other (atomicfile.Write).
func writeFilesAtomic(dir string, files ...fileWrite) error {
	return atomicfile.Write(dir, files...)
}

// removeStaleTemps removes temporary files a previous process left in dir
// when it stopped half-way through a write.
func removeStaleTemps(dir string) { atomicfile.RemoveTemps(dir, ".pem") }
