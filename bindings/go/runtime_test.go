package rio_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	rio "librio/bindings/go"
)

func TestVersion(t *testing.T) {
	if v := rio.Version(); !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) {
		t.Fatalf("Version() = %q", v)
	}
}

func TestOpenDefaults(t *testing.T) {
	rt, err := rio.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if b := rt.Backend(); b != rio.BackendIOUring && b != rio.BackendThreadPool {
		t.Fatalf("Backend() = %q", b)
	}
	rt2, err := rio.Open(&rio.Options{Backend: rio.BackendAuto, QueueDepth: 64, WorkerThreads: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rt2.Backend() != rt.Backend() {
		t.Fatalf("auto chose %s, defaults chose %s", rt2.Backend(), rt.Backend())
	}
	rt2.Close()
}

func TestOpenInvalid(t *testing.T) {
	_, err := rio.Open(&rio.Options{Backend: "epoll"})
	wantErrno(t, err, syscall.EINVAL, "epoll")
}

func TestOpenBadEnvironment(t *testing.T) {
	t.Setenv("RUSTFS_MAX_CONCURRENT_FILE_OPS", "lots")
	_, err := rio.Open(nil)
	wantErrno(t, err, syscall.EINVAL, "RUSTFS_MAX_CONCURRENT_FILE_OPS")
}

func TestCapabilities(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		c, err := rt.Capabilities()
		if err != nil {
			t.Fatal(err)
		}
		if c.Backend != rt.Backend() {
			t.Fatalf("Capabilities().Backend = %s, want %s", c.Backend, rt.Backend())
		}
		if c.KernelRelease == "" || c.MaxConcurrentOps == 0 || c.WorkerThreads == 0 {
			t.Fatalf("incomplete capabilities: %+v", c)
		}
		if rt.Backend() == rio.BackendIOUring {
			if !c.IOUringAvailable || c.SQEntries == 0 || c.IOUringUnavailableReason != "" {
				t.Fatalf("io_uring runtime: %+v", c)
			}
			const ioringOpRead = 22 // IORING_OP_READ, kernel 5.6+
			if !c.SupportsOpcode(ioringOpRead) {
				t.Fatalf("IORING_OP_READ not reported: %x", c.IOUringOpcodes)
			}
		} else if c.IOUringUnavailableReason == "" {
			t.Fatalf("thread pool without a reason: %+v", c)
		}
		if c.SupportsOpcode(-1) || c.SupportsOpcode(1000) {
			t.Fatal("SupportsOpcode out of range")
		}
	})
}

func TestMetricsPrometheus(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, err := rt.Create(filepath.Join(t.TempDir(), "m"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
			t.Fatal(err)
		}
		text, err := rt.MetricsPrometheus()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"# TYPE rio_ops_total counter", "rio_op_bytes_total", "rio_op_duration_seconds_bucket"} {
			if !strings.Contains(text, want) {
				t.Fatalf("metrics lack %q:\n%s", want, text)
			}
		}
		if strings.ContainsRune(text, 0) {
			t.Fatal("metrics contain a NUL")
		}
	})
}

func TestRuntimeClose(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		path := filepath.Join(t.TempDir(), "f")
		f, err := rt.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Close(); err != nil {
			t.Fatal(err)
		}
		if err := rt.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		// Files outlive the runtime handle.
		if _, err := f.WriteAt([]byte("still here"), 0); err != nil {
			t.Fatalf("WriteAt after runtime Close: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = rt.OpenFile(path, 0, 0)
		if !errors.Is(err, fs.ErrClosed) || !errors.Is(err, syscall.EBADF) {
			t.Fatalf("OpenFile on a closed runtime: %v", err)
		}
		if _, err := rt.Capabilities(); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("Capabilities on a closed runtime: %v", err)
		}
		if _, err := rt.MetricsPrometheus(); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("MetricsPrometheus on a closed runtime: %v", err)
		}
	})
}
