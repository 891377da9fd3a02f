package rio_test

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	rio "librio/bindings/go"
)

// Like the C tests: RIO_CTEST_BACKENDS (default "io_uring,thread_pool")
// selects the backends; io_uring is skipped where unavailable unless
// RIO_CTEST_REQUIRE_IO_URING=1.
func backends() []rio.Backend {
	list := os.Getenv("RIO_CTEST_BACKENDS")
	if list == "" {
		list = "io_uring,thread_pool"
	}
	var out []rio.Backend
	for _, b := range strings.Split(list, ",") {
		out = append(out, rio.Backend(strings.TrimSpace(b)))
	}
	return out
}

func openRuntime(t testing.TB, b rio.Backend) *rio.Runtime {
	t.Helper()
	rt, err := rio.Open(&rio.Options{Backend: b})
	if err != nil {
		if b == rio.BackendIOUring && errors.Is(err, syscall.EOPNOTSUPP) &&
			os.Getenv("RIO_CTEST_REQUIRE_IO_URING") != "1" {
			t.Skipf("io_uring unavailable: %v", err)
		}
		t.Fatalf("Open(%s): %v", b, err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// eachBackend runs fn as a subtest per backend, with its own runtime.
func eachBackend(t *testing.T, fn func(t *testing.T, rt *rio.Runtime)) {
	for _, b := range backends() {
		b := b
		t.Run(string(b), func(t *testing.T) {
			rt := openRuntime(t, b)
			if got := rt.Backend(); got != b {
				t.Fatalf("Backend() = %s, want %s", got, b)
			}
			fn(t, rt)
		})
	}
}

// pattern returns n deterministic bytes for (id, block).
func pattern(id, block, n int) []byte {
	b := make([]byte, n)
	x := uint32(id*7919 + block*104729 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// wantErrno checks err is a *rio.Error with errno want whose message
// mentions each of needles.
func wantErrno(t testing.TB, err error, want syscall.Errno, needles ...string) *rio.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	var re *rio.Error
	if !errors.As(err, &re) {
		t.Fatalf("error %T %v is not a *rio.Error", err, err)
	}
	if !errors.Is(err, want) || re.Errno != want {
		t.Fatalf("error %v has errno %d (%v), want %d (%v)", err, int(re.Errno), re.Errno, int(want), want)
	}
	for _, n := range needles {
		if !strings.Contains(err.Error(), n) {
			t.Fatalf("error %q does not mention %q", err.Error(), n)
		}
	}
	return re
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
