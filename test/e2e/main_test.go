package e2e_test

import (
	"flag"
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// envtest logs through controller-runtime's logger; the components'
	// own logs go to files that failures print.
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}
