package rio_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	rio "librio/bindings/go"
)

func create(t *testing.T, rt *rio.Runtime, name string) (*rio.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := rt.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

func TestFileRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, path := create(t, rt, "rt")
		if f.Name() != path {
			t.Fatalf("Name() = %q", f.Name())
		}
		data := pattern(1, 0, 3*4096+17)
		if n, err := f.WriteAt(data, 100); n != len(data) || err != nil {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
		got := make([]byte, len(data))
		if n, err := f.ReadAt(got, 100); n != len(data) || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAt = %d, %v (equal %v)", n, err, bytes.Equal(got, data))
		}
		if size, err := f.Size(); size != int64(100+len(data)) || err != nil {
			t.Fatalf("Size = %d, %v", size, err)
		}
		// The bytes are in the file, for any other reader.
		disk, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(disk[100:], data) || !bytes.Equal(disk[:100], make([]byte, 100)) {
			t.Fatalf("file content differs (%v)", err)
		}
		if n, err := f.WriteAt(nil, 5); n != 0 || err != nil {
			t.Fatalf("empty WriteAt = %d, %v", n, err)
		}
		if n, err := f.ReadAt(nil, 5); n != 0 || err != nil {
			t.Fatalf("empty ReadAt = %d, %v", n, err)
		}
	})
}

// ReadAt follows the io.ReaderAt contract at end of file.
func TestReadAtEOF(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, _ := create(t, rt, "eof")
		data := pattern(2, 0, 100)
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 50)
		for _, c := range []struct {
			off     int64
			size, n int
			err     error
		}{
			{0, 50, 50, nil}, {80, 20, 20, nil}, {80, 50, 20, io.EOF}, {99, 50, 1, io.EOF},
			{100, 50, 0, io.EOF}, {1 << 40, 50, 0, io.EOF},
		} {
			n, err := f.ReadAt(buf[:c.size], c.off)
			if n != c.n || err != c.err {
				t.Fatalf("ReadAt(%d bytes, %d) = %d, %v; want %d, %v", c.size, c.off, n, err, c.n, c.err)
			}
			if n > 0 && !bytes.Equal(buf[:n], data[c.off:c.off+int64(n)]) {
				t.Fatalf("ReadAt(%d bytes, %d): wrong data", c.size, c.off)
			}
		}
		// The standard library's readers work on top of it.
		if err := iotest.TestReader(io.NewSectionReader(f, 0, int64(len(data))), data); err != nil {
			t.Fatal(err)
		}
		all, err := io.ReadAll(io.NewSectionReader(f, 10, 1000))
		if err != nil || !bytes.Equal(all, data[10:]) {
			t.Fatalf("ReadAll(SectionReader) = %d bytes, %v", len(all), err)
		}
	})
}

func TestVectored(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, _ := create(t, rt, "v")
		parts := [][]byte{pattern(3, 0, 10), {}, pattern(3, 1, 4096), pattern(3, 2, 1)}
		want := bytes.Join(parts, nil)
		if n, err := f.WritevAt(parts, 7); n != len(want) || err != nil {
			t.Fatalf("WritevAt = %d, %v", n, err)
		}
		a, b, c := make([]byte, 7), make([]byte, 4000), make([]byte, 200)
		n, err := f.ReadvAt([][]byte{a, b, c}, 7)
		if n != len(want) || err != io.EOF {
			t.Fatalf("ReadvAt = %d, %v; want %d, EOF", n, err, len(want))
		}
		got := append(append(append([]byte{}, a...), b...), c[:len(want)-len(a)-len(b)]...)
		if !bytes.Equal(got, want) {
			t.Fatal("ReadvAt: wrong data")
		}
		if n, err := f.ReadvAt([][]byte{a, b}, 7); n != len(a)+len(b) || err != nil {
			t.Fatalf("full ReadvAt = %d, %v", n, err)
		}
		if n, err := f.WritevAt(nil, 0); n != 0 || err != nil {
			t.Fatalf("WritevAt(nil) = %d, %v", n, err)
		}
		many := make([][]byte, 1025)
		for i := range many {
			many[i] = a[:1]
		}
		_, err = f.WritevAt(many, 0)
		wantErrno(t, err, syscall.EINVAL)
	})
}

func TestSyncAllocateTruncate(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, _ := create(t, rt, "s")
		if _, err := f.WriteAt([]byte("durable"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Datasync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Allocate(0, 1<<20); err != nil && !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Fatal(err)
		} else if err == nil {
			if size, _ := f.Size(); size != 1<<20 {
				t.Fatalf("size after Allocate = %d", size)
			}
		}
		if err := f.Truncate(3); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		if n, err := f.ReadAt(buf, 0); n != 3 || err != io.EOF || string(buf[:3]) != "dur" {
			t.Fatalf("after Truncate: %d, %v, %q", n, err, buf[:n])
		}
		if err := f.Truncate(-1); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("Truncate(-1): %v", err)
		}
		if err := f.Allocate(0, 0); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("Allocate(0, 0): %v", err)
		}
	})
}

func TestOpenFlags(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		dir := t.TempDir()
		path := filepath.Join(dir, "flags")

		_, err := rt.OpenFile(path, os.O_RDONLY, 0)
		wantErrno(t, err, syscall.ENOENT, path)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("errors.Is(%v, fs.ErrNotExist) = false", err)
		}

		f, err := rt.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm()&^0o640 != 0 {
			t.Fatalf("mode %v, %v", st.Mode(), err)
		}
		if _, err := f.WriteAt([]byte("0123456789"), 0); err != nil {
			t.Fatal(err)
		}
		_, err = f.ReadAt(make([]byte, 1), 0) // write-only
		wantErrno(t, err, syscall.EBADF)
		f.Close()

		_, err = rt.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		wantErrno(t, err, syscall.EEXIST, path)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("errors.Is(%v, fs.ErrExist) = false", err)
		}

		r, err := rt.OpenReadOnly(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.WriteAt([]byte("x"), 0) // read-only
		wantErrno(t, err, syscall.EBADF)
		r.Close()

		a, err := rt.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := a.Append([]byte("ab")); n != 2 || err != nil {
			t.Fatalf("Append = %d, %v", n, err)
		}
		buf := make([]byte, 20)
		if n, _ := a.ReadAt(buf, 0); string(buf[:n]) != "0123456789ab" {
			t.Fatalf("O_APPEND content %q", buf[:n])
		}
		a.Close()

		tr, err := rt.OpenFile(path, os.O_RDWR|os.O_TRUNC|O_CLOEXEC(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if size, _ := tr.Size(); size != 0 {
			t.Fatalf("O_TRUNC size %d", size)
		}
		tr.Close()

		d, err := rt.OpenFile(path, os.O_RDWR|rio.O_DSYNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.WriteAt([]byte("dsync"), 0); err != nil {
			t.Fatal(err)
		}
		d.Close()

		_, err = rt.OpenFile(path, os.O_RDWR|os.O_SYNC, 0)
		wantErrno(t, err, syscall.EINVAL, "O_DSYNC")
		_, err = rt.OpenFile(path, os.O_RDWR|os.O_WRONLY, 0)
		wantErrno(t, err, syscall.EINVAL)
		_, err = rt.OpenFile(dir, os.O_RDWR, 0)
		wantErrno(t, err, syscall.EISDIR, dir)
	})
}

func O_CLOEXEC() int { return syscall.O_CLOEXEC }

func TestDirect(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		path := filepath.Join(t.TempDir(), "direct")
		f, err := rt.OpenFile(path, os.O_RDWR|os.O_CREATE|rio.O_DIRECT, 0o644)
		if errors.Is(err, syscall.EINVAL) {
			t.Skipf("O_DIRECT unsupported here: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := rio.AlignedBuffer(2 * rio.BufferAlignment)
		copy(buf, pattern(4, 0, len(buf)))
		if _, err := f.WriteAt(buf, rio.BufferAlignment); err != nil {
			t.Fatal(err)
		}
		got := rio.AlignedBuffer(len(buf))
		if n, err := f.ReadAt(got, rio.BufferAlignment); n != len(buf) || err != nil || !bytes.Equal(got, buf) {
			t.Fatalf("O_DIRECT ReadAt = %d, %v", n, err)
		}
		_, err = f.ReadAt(got[1:513], 0)
		wantErrno(t, err, syscall.EINVAL, "align")
	})
}

func TestErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, _ := create(t, rt, "e")
		_, err := f.ReadAt(make([]byte, 1), -1)
		wantErrno(t, err, syscall.EINVAL, "negative")
		_, err = f.WriteAt(make([]byte, 1), -1)
		wantErrno(t, err, syscall.EINVAL, "negative")
		_, err = f.ReadvAt(nil, -1)
		wantErrno(t, err, syscall.EINVAL, "negative")

		var errno syscall.Errno
		_, err = rt.OpenFile(filepath.Join(t.TempDir(), "missing", "x"), os.O_RDONLY, 0)
		if !errors.As(err, &errno) || errno != syscall.ENOENT {
			t.Fatalf("errors.As(errno): %v %v", err, errno)
		}
		re := wantErrno(t, err, syscall.ENOENT, "rio_file_open", "missing")
		if re.Op != "Runtime.OpenFile" || re.Timeout() {
			t.Fatalf("Op = %q", re.Op)
		}
	})
}

// The message is read inside the failing cgo call: under many goroutines
// (and so OS-thread migrations) every error still carries its own message.
func TestErrorMessagesPerCall(t *testing.T) {
	rt := openRuntime(t, rio.BackendThreadPool)
	dir := t.TempDir()
	good, _ := create(t, rt, "good")
	if _, err := good.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 512)
			for i := 0; i < 50; i++ {
				if g%2 == 0 {
					path := filepath.Join(dir, fmt.Sprintf("missing-%d-%d", g, i))
					_, err := rt.OpenFile(path, os.O_RDONLY, 0)
					if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, fs.ErrNotExist) {
						errs <- fmt.Errorf("goroutine %d: error %v does not name %s", g, err, path)
						return
					}
				} else {
					if _, err := good.ReadAt(buf, int64(i)); err != nil {
						errs <- err
						return
					}
					_, err := good.ReadAt(buf, -1-int64(g))
					if err == nil || !strings.Contains(err.Error(), "negative") {
						errs <- fmt.Errorf("goroutine %d: %v", g, err)
						return
					}
				}
				runtime.Gosched()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Many goroutines on one File: each writes its own blocks, interleaved
// with the others, and reads back everyone's; then all data is verified.
func TestConcurrentFile(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, path := create(t, rt, "conc")
		const workers, blocks, bs = 16, 32, 4096
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				got := make([]byte, bs)
				for b := 0; b < blocks; b++ {
					off := int64((b*workers + w) * bs)
					data := pattern(w, b, bs)
					var err error
					if b%3 == 0 {
						_, err = f.WritevAt([][]byte{data[:100], data[100:]}, off)
					} else {
						_, err = f.WriteAt(data, off)
					}
					if err != nil {
						errs <- err
						return
					}
					if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, data) {
						errs <- fmt.Errorf("worker %d block %d: read back differs (%v)", w, b, err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		disk, err := os.ReadFile(path)
		if err != nil || len(disk) != workers*blocks*bs {
			t.Fatalf("file size %d, %v", len(disk), err)
		}
		for w := 0; w < workers; w++ {
			for b := 0; b < blocks; b++ {
				off := (b*workers + w) * bs
				if !bytes.Equal(disk[off:off+bs], pattern(w, b, bs)) {
					t.Fatalf("worker %d block %d differs on disk", w, b)
				}
			}
		}
	})
}

func TestFileClose(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		f, _ := create(t, rt, "c")
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, fs.ErrClosed) || !errors.Is(err, syscall.EBADF) {
				t.Fatalf("%s after Close: %v", what, err)
			}
		}
		_, err := f.ReadAt(make([]byte, 1), 0)
		check("ReadAt", err)
		_, err = f.WriteAt(make([]byte, 1), 0)
		check("WriteAt", err)
		_, err = f.ReadvAt(nil, 0)
		check("ReadvAt", err)
		_, err = f.WritevAt(nil, 0)
		check("WritevAt", err)
		check("Sync", f.Sync())
		check("Datasync", f.Datasync())
		check("Allocate", f.Allocate(0, 1))
		check("Truncate", f.Truncate(0))
		_, err = f.Size()
		check("Size", err)
	})
}

// Close racing with I/O from other goroutines: every call either works
// or reports fs.ErrClosed; nothing crashes.
func TestCloseWhileInUse(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		for round := 0; round < 5; round++ {
			f, _ := create(t, rt, fmt.Sprintf("race%d", round))
			if _, err := f.WriteAt(pattern(round, 0, 8192), 0); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := 0; g < 6; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					buf := make([]byte, 4096)
					for i := 0; ; i++ {
						var err error
						if g%2 == 0 {
							_, err = f.ReadAt(buf, int64(i%2)*4096)
						} else {
							_, err = f.WriteAt(buf[:512], int64(i%16)*512)
						}
						if errors.Is(err, fs.ErrClosed) {
							return
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}(g)
			}
			time.Sleep(5 * time.Millisecond)
			var cw sync.WaitGroup
			for c := 0; c < 3; c++ {
				cw.Add(1)
				go func() { defer cw.Done(); f.Close() }()
			}
			cw.Wait()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		}
	})
}

// Files and runtimes that are dropped without Close are closed by their
// finalizers (a safety net; Close is the way).
func TestFinalizers(t *testing.T) {
	dir := t.TempDir()
	runtime.GC()
	before := openFDs(t)
	func() {
		rt, err := rio.Open(&rio.Options{Backend: rio.BackendThreadPool})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if _, err := rt.Create(filepath.Join(dir, fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		n := openFDs(t)
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open before, %d after dropping 20 files", before, n)
		}
	}
}

// WriteAt (and WritevAt) on a file opened with O_APPEND refuse, as
// os.File.WriteAt does, instead of silently writing at the end; the file is
// unchanged. Append writes at the end. Checked against os.File itself.
func TestWriteAtAppendModeRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		path := filepath.Join(t.TempDir(), "append")
		if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
			t.Fatal(err)
		}
		osf, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, osErr := osf.WriteAt([]byte("x"), 0)
		osf.Close()
		if osErr == nil {
			t.Fatal("os.File.WriteAt on O_APPEND succeeded; the reference behaviour changed")
		}
		for _, flag := range []int{os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_APPEND} {
			f, err := rt.OpenFile(path, flag, 0)
			if err != nil {
				t.Fatal(err)
			}
			n, err := f.WriteAt([]byte("XY"), 2)
			if n != 0 || err == nil {
				t.Fatalf("WriteAt on O_APPEND = %d, %v; os.File says %v", n, err, osErr)
			}
			if !errors.Is(err, rio.ErrWriteAtInAppendMode) || !errors.Is(err, syscall.EINVAL) ||
				!strings.Contains(err.Error(), "O_APPEND") || !strings.Contains(err.Error(), path) {
				t.Fatalf("WriteAt error %v", err)
			}
			if _, err := f.WriteAt(nil, 0); !errors.Is(err, rio.ErrWriteAtInAppendMode) {
				t.Fatalf("empty WriteAt on O_APPEND: %v", err)
			}
			if _, err := f.WritevAt([][]byte{[]byte("Z")}, 0); !errors.Is(err, rio.ErrWriteAtInAppendMode) {
				t.Fatalf("WritevAt on O_APPEND: %v", err)
			}
			f.Close()
			if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, fs.ErrClosed) {
				t.Fatalf("WriteAt after Close: %v, want fs.ErrClosed first", err)
			}
		}
		// A descriptor opened with O_APPEND elsewhere (NewFile reads its flags).
		osa, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		nf, err := rt.NewFile(osa.Fd())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nf.WriteAt([]byte("XY"), 2); !errors.Is(err, rio.ErrWriteAtInAppendMode) {
			t.Fatalf("WriteAt on an O_APPEND descriptor from NewFile: %v", err)
		}
		nf.Close()
		osa.Close()
		if got, _ := os.ReadFile(path); string(got) != "0123456789" {
			t.Fatalf("refused writes changed the file: %q", got)
		}
		a, err := rt.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := a.Append([]byte("ab")); n != 2 || err != nil {
			t.Fatalf("Append = %d, %v", n, err)
		}
		a.Close()
		if got, _ := os.ReadFile(path); string(got) != "0123456789ab" {
			t.Fatalf("after Append: %q", got)
		}
		p, err := rt.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, err := p.Append([]byte("x")); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("Append without O_APPEND: %v", err)
		}
		if n, err := p.WriteAt([]byte("AB"), 0); n != 2 || err != nil {
			t.Fatalf("WriteAt without O_APPEND = %d, %v", n, err)
		}
	})
}
