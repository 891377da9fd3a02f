package rio_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	rio "librio/bindings/go"
)

// TestLockProbeHelper is the child of lockedByUs: it exits 0 when it sees
// a write lock of process RIO_LOCK_PROBE_PID on RIO_LOCK_PROBE_PATH.
func TestLockProbeHelper(t *testing.T) {
	path := os.Getenv("RIO_LOCK_PROBE_PATH")
	if path == "" {
		t.Skip("only runs as lockedByUs's child")
	}
	f, err := os.Open(path)
	if err != nil {
		os.Exit(2)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		os.Exit(2)
	}
	if lk.Type != syscall.F_UNLCK && strconv.Itoa(int(lk.Pid)) == os.Getenv("RIO_LOCK_PROBE_PID") {
		os.Exit(0)
	}
	os.Exit(1)
}

// lockedByUs reports whether another process sees our POSIX lock on path
// (the probe opens the file in the child: a close here would drop it).
func lockedByUs(t *testing.T, path string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockProbeHelper$")
	cmd.Env = append(os.Environ(), "RIO_LOCK_PROBE_PATH="+path, "RIO_LOCK_PROBE_PID="+strconv.Itoa(os.Getpid()))
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("lock probe: %v", err)
	}
	return true
}

func lockWhole(t *testing.T, fd uintptr) {
	t.Helper()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(fd, syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
}

func TestNewFileBorrowedKeepsFdAndLocks(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		path := filepath.Join(t.TempDir(), "locked")
		osf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer osf.Close()
		lockWhole(t, osf.Fd())
		if !lockedByUs(t, path) {
			t.Fatal("the probe does not see the lock")
		}
		f, err := rt.NewFile(osf.Fd())
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != path {
			t.Fatalf("Name() = %q, want %q", f.Name(), path)
		}
		if n, err := f.WriteDurable([]byte("durable"), 0); n != 7 || err != nil {
			t.Fatalf("WriteDurable = %d, %v", n, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if !lockedByUs(t, path) {
			t.Fatal("closing the rio File dropped the caller's lock")
		}
		got := make([]byte, 7)
		if n, err := osf.ReadAt(got, 0); n != 7 || err != nil || string(got) != "durable" {
			t.Fatalf("the fd is unusable after Close: %d, %v, %q", n, err, got)
		}
	})
}

func TestNewOwnedFileClosesFd(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		path := filepath.Join(t.TempDir(), "owned")
		fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		lockWhole(t, uintptr(fd))
		f, err := rt.NewOwnedFile(uintptr(fd))
		if err != nil {
			t.Fatal(err)
		}
		data := pattern(3, 1, 3*4096+100)
		if n, err := f.WriteDurable(data, 10); n != len(data) || err != nil {
			t.Fatalf("WriteDurable = %d, %v", n, err)
		}
		got := make([]byte, len(data))
		if n, err := f.ReadAt(got, 10); n != len(data) || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAt after WriteDurable = %d, %v", n, err)
		}
		f.Close()
		if lockedByUs(t, path) {
			t.Fatal("closing an owned File kept the fd open")
		}
	})
}

func TestNewFileModesAndBadFds(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		path := filepath.Join(t.TempDir(), "modes")
		if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
			t.Fatal(err)
		}
		ro, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		f, err := rt.NewFile(ro.Fd())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EBADF) {
			t.Fatalf("WriteAt on a read-only fd: %v, want EBADF", err)
		}
		if _, err := f.WriteDurable([]byte("x"), 0); !errors.Is(err, syscall.EBADF) {
			t.Fatalf("WriteDurable on a read-only fd: %v, want EBADF", err)
		}
		f.Close()
		ap, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer ap.Close()
		f, err = rt.NewFile(ap.Fd())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteDurable([]byte("x"), 0); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("WriteDurable on an O_APPEND fd: %v, want EINVAL", err)
		}
		// WriteAt refuses on O_APPEND as os.File does, also for an adopted fd.
		if _, err := f.WriteAt([]byte("x"), 0); err == nil {
			t.Fatal("WriteAt on an O_APPEND fd succeeded")
		}
		f.Close()
		for _, bad := range []uintptr{^uintptr(0), 1 << 40} {
			if _, err := rt.NewFile(bad); !errors.Is(err, syscall.EBADF) || !strings.Contains(err.Error(), "fd -1") {
				t.Fatalf("NewFile(%d): %v, want EBADF naming fd -1", bad, err)
			}
		}
		if _, err := f.WriteDurable([]byte("x"), -1); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("WriteDurable at -1: %v", err)
		}
	})
}
