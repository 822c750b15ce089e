package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/atomicfile"
	"github.com/athenz-injector/athenz-injector/pkg/sidecar/atomicfile/atomicfiletest"
)

// TestWriteNeverPartial: readers in a loop see one of the versions
// written, whole, while Write replaces the file many times.
func TestWriteNeverPartial(t *testing.T) {
	dir := t.TempDir()
	versions := make([][]byte, 200)
	for i := range versions {
		// Sizes differ, so a partial read would show.
		versions[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 1000+37*i)
	}
	if err := atomicfile.Write(dir, atomicfile.File{Name: "f", Data: versions[0], Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(filepath.Join(dir, "f"))
		if err != nil || len(b) < 1000 || (len(b)-1000)%37 != 0 || bytes.Count(b, b[:1]) != len(b) {
			return fmt.Sprintf("read of %d bytes, error %v", len(b), err)
		}
		return ""
	}
	readers := []*atomicfiletest.Reader{atomicfiletest.StartReader(t, read), atomicfiletest.StartReader(t, read)}
	for _, v := range versions[1:] {
		if err := atomicfile.Write(dir, atomicfile.File{Name: "f", Data: v, Perm: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	var reads int64
	for _, r := range readers {
		reads += r.Check(t, "the replaced file")
	}
	t.Logf("%d reads during %d replacements", reads, len(versions)-1)
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(got, versions[len(versions)-1]) {
		t.Errorf("the file holds %d bytes, want the last version's %d", len(got), len(versions[len(versions)-1]))
	}
}

func TestWriteModesAndRefusals(t *testing.T) {
	dir := t.TempDir()
	if err := atomicfile.Write(dir, atomicfile.File{Name: "a", Data: []byte("x"), Perm: 0o640}, atomicfile.File{Name: "b", Data: []byte("y"), Perm: 0o604}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{"a": 0o640, "b": 0o604} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v whatever the umask", name, fi.Mode().Perm(), err, want)
		}
	}
	err := atomicfile.Write(dir, atomicfile.File{Name: "a", Data: []byte("new"), Perm: 0o644}, atomicfile.File{Name: "c", Perm: 0o644})
	if err == nil || !strings.Contains(err.Error(), "c: refusing to write an empty file") {
		t.Errorf("Write with an empty file = %v, want a refusal naming it", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "x" {
		t.Errorf("after a refused Write, a = %q, want it unchanged: nothing is renamed unless every file is staged", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d entries after a refused Write, want the 2 files and no temporary ones", len(entries))
	}
	if err := atomicfile.Write(filepath.Join(dir, "missing"), atomicfile.File{Name: "a", Data: []byte("x"), Perm: 0o644}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write into a missing directory = %v, want ErrNotExist", err)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".service.key.pem.tmp-123", ".reader.roletoken.tmp-9", ".other.tmp-1", "keep.pem", ".hidden"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	atomicfile.RemoveTemps(dir, ".pem", ".roletoken")
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{".hidden", ".other.tmp-1", "keep.pem"}; strings.Join(left, ",") != strings.Join(want, ",") {
		t.Errorf("after RemoveTemps: %v, want %v", left, want)
	}
}
