package webhook

import (
	"flag"
	"os"
	"testing"
)

// update rewrites the golden files: go test ./pkg/webhook -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}
