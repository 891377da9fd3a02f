package rio

/*
#include "riogo.h"
*/
import "C"

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// File is an open file doing positioned I/O through a runtime's engine.
// It implements io.ReaderAt, io.WriterAt and io.Closer; all methods may be
// called from many goroutines at once.
type File struct {
	mu   sync.RWMutex
	ptr  *C.rio_file_t
	name string
	// appendMode: opened with os.O_APPEND, where the kernel ignores the
	// offset, so WriteAt and WritevAt refuse (as os.File.WriteAt does)
	// rather than write somewhere the caller did not ask for.
	appendMode bool
}

var (
	_ io.ReaderAt = (*File)(nil)
	_ io.WriterAt = (*File)(nil)
	_ io.Closer   = (*File)(nil)
)

// Flags accepted by OpenFile besides os.O_RDONLY, os.O_WRONLY, os.O_RDWR,
// os.O_CREATE, os.O_TRUNC, os.O_EXCL and os.O_APPEND (O_CLOEXEC is
// accepted and implied).
const (
	// O_DIRECT bypasses the page cache: buffers, lengths and offsets must
	// be aligned (see AlignedBuffer).
	O_DIRECT = syscall.O_DIRECT
	// O_DSYNC makes every write durable when it returns.
	O_DSYNC = syscall.O_DSYNC
)

// openFlags maps os.OpenFile flags to RIO_OPEN_* flags.
func openFlags(flag int) (C.uint32_t, bool) {
	var f C.uint32_t
	switch flag & syscall.O_ACCMODE {
	case os.O_RDONLY:
		f = C.RIO_OPEN_READ
	case os.O_WRONLY:
		f = C.RIO_OPEN_WRITE
	case os.O_RDWR:
		f = C.RIO_OPEN_READ | C.RIO_OPEN_WRITE
	default:
		return 0, false
	}
	rest := flag &^ (syscall.O_ACCMODE | syscall.O_CLOEXEC)
	for _, m := range []struct {
		os  int
		rio C.uint32_t
	}{
		{os.O_CREATE, C.RIO_OPEN_CREATE},
		{os.O_TRUNC, C.RIO_OPEN_TRUNCATE},
		{os.O_EXCL, C.RIO_OPEN_EXCL},
		{os.O_APPEND, C.RIO_OPEN_APPEND},
		{O_DIRECT, C.RIO_OPEN_DIRECT},
		{O_DSYNC, C.RIO_OPEN_DSYNC},
	} {
		if rest&m.os != 0 {
			f |= m.rio
			rest &^= m.os
		}
	}
	return f, rest == 0 // anything left (O_SYNC, O_PATH, ...) is unsupported
}

// OpenFile opens a file like os.OpenFile: flag combines os.O_RDONLY,
// os.O_WRONLY or os.O_RDWR with os.O_CREATE, os.O_TRUNC, os.O_EXCL,
// os.O_APPEND, O_DIRECT and O_DSYNC; perm applies when the file is created
// (before the umask). Other flags (os.O_SYNC: use O_DSYNC) fail with EINVAL.
func (rt *Runtime) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	const op = "Runtime.OpenFile"
	flags, ok := openFlags(flag)
	if !ok {
		return nil, errInvalid(op, name+": unsupported open flags (supported: O_RDONLY, O_WRONLY, O_RDWR, "+
			"O_CREATE, O_TRUNC, O_EXCL, O_APPEND, O_DIRECT, O_DSYNC)")
	}
	mode := uint32(perm.Perm())
	if perm&fs.ModeSetuid != 0 {
		mode |= syscall.S_ISUID
	}
	if perm&fs.ModeSetgid != 0 {
		mode |= syscall.S_ISGID
	}
	if perm&fs.ModeSticky != 0 {
		mode |= syscall.S_ISVTX
	}
	ptr, err := rt.lock(op)
	if err != nil {
		return nil, err
	}
	defer rt.mu.RUnlock()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var fp *C.rio_file_t
	if _, err := result(op, C.riogo_file_open(ptr, cname, flags, C.uint32_t(mode), &fp)); err != nil {
		return nil, err
	}
	f := &File{ptr: fp, name: name, appendMode: flag&os.O_APPEND != 0}
	runtime.SetFinalizer(f, (*File).Close)
	return f, nil
}

// OpenReadOnly opens an existing file for reading (like os.Open).
func (rt *Runtime) OpenReadOnly(name string) (*File, error) {
	return rt.OpenFile(name, os.O_RDONLY, 0)
}

// Create creates or truncates a file for reading and writing, mode 0666
// before the umask (like os.Create).
func (rt *Runtime) Create(name string) (*File, error) {
	return rt.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

func (f *File) lock(op string) (*C.rio_file_t, error) {
	f.mu.RLock()
	if f.ptr == nil {
		f.mu.RUnlock()
		return nil, errClosed(op, "file "+f.name)
	}
	return f.ptr, nil
}

// ReadAt reads len(p) bytes at offset off. It returns fewer bytes only at
// end of file, and then io.EOF (the io.ReaderAt contract); a read that
// ends exactly at end of file returns nil.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	const op = "File.ReadAt"
	if off < 0 {
		return 0, errInvalid(op, "negative offset")
	}
	ptr, err := f.lock(op)
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	if len(p) == 0 {
		return 0, nil
	}
	n, err := result(op, C.riogo_file_read_at(ptr, unsafe.Pointer(&p[0]), C.size_t(len(p)), C.uint64_t(off)))
	if err != nil {
		return 0, err
	}
	if int(n) < len(p) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// WriteAt writes all of p at offset off. It returns len(p), or 0 and an
// error. Like os.File.WriteAt, it refuses a file opened with os.O_APPEND
// (the kernel would write at the end, not at off): the error is
// ErrWriteAtInAppendMode (and EINVAL). Use Append on such files.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	const op = "File.WriteAt"
	if err := f.checkNotAppend(op); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errInvalid(op, "negative offset")
	}
	return f.write(op, p, off)
}

// Append writes all of p at the end of a file opened with os.O_APPEND (one
// write: concurrent appends do not interleave their bytes). It returns
// len(p), or 0 and an error; EINVAL on a file opened without os.O_APPEND.
func (f *File) Append(p []byte) (int, error) {
	const op = "File.Append"
	if !f.appendMode {
		return 0, errInvalid(op, f.name+": the file was not opened with os.O_APPEND (use WriteAt)")
	}
	return f.write(op, p, 0) // the kernel ignores the offset under O_APPEND
}

func (f *File) write(op string, p []byte, off int64) (int, error) {
	ptr, err := f.lock(op)
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	if len(p) == 0 {
		return 0, nil
	}
	n, err := result(op, C.riogo_file_write_at(ptr, unsafe.Pointer(&p[0]), C.size_t(len(p)), C.uint64_t(off)))
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// ErrWriteAtInAppendMode is what WriteAt and WritevAt return (wrapped, with
// EINVAL) on a file opened with os.O_APPEND, as os.File.WriteAt does.
var ErrWriteAtInAppendMode = errors.New("rio: invalid use of WriteAt on file opened with O_APPEND")

// checkNotAppend fails positioned writes on an O_APPEND file; a closed
// file reports that first, as os.File does.
func (f *File) checkNotAppend(op string) error {
	if !f.appendMode {
		return nil
	}
	if _, err := f.lock(op); err != nil {
		return err
	}
	f.mu.RUnlock()
	msg := "rio " + op + ": " + f.name + ": the file was opened with O_APPEND, where writes go to the end " +
		"whatever the offset; use Append"
	return &Error{Op: op, Errno: syscall.EINVAL, Msg: msg, sentinel: ErrWriteAtInAppendMode}
}

// iovecs builds a C.malloc'd iovec array for bufs (see pin.go); free it
// with C.free, then unpin, then runtime.KeepAlive(bufs).
func iovecs(pins *bufPins, bufs [][]byte) (*C.struct_iovec, int) {
	if len(bufs) == 0 {
		return nil, 0
	}
	mem := C.malloc(C.size_t(len(bufs)) * C.size_t(unsafe.Sizeof(C.struct_iovec{})))
	if mem == nil {
		panic("rio: out of memory")
	}
	iov := unsafe.Slice((*C.struct_iovec)(mem), len(bufs))
	total := 0
	for i, b := range bufs {
		*(*uintptr)(unsafe.Pointer(&iov[i].iov_base)) = bufAddr(pins, b)
		iov[i].iov_len = C.size_t(len(b))
		total += len(b)
	}
	return (*C.struct_iovec)(mem), total
}

// ReadvAt reads into bufs in turn (scatter), starting at offset off, in
// one operation. Like ReadAt, it returns fewer bytes than the buffers hold
// only at end of file, and then io.EOF. At most 1024 buffers.
func (f *File) ReadvAt(bufs [][]byte, off int64) (int, error) {
	const op = "File.ReadvAt"
	if off < 0 {
		return 0, errInvalid(op, "negative offset")
	}
	ptr, err := f.lock(op)
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	var pins bufPins
	iov, total := iovecs(&pins, bufs)
	n, err := result(op, C.riogo_file_readv_at(ptr, iov, C.int(len(bufs)), C.uint64_t(off)))
	C.free(unsafe.Pointer(iov))
	pins.unpin()
	runtime.KeepAlive(bufs)
	if err != nil {
		return 0, err
	}
	if int(n) < total {
		return int(n), io.EOF
	}
	return int(n), nil
}

// WritevAt writes bufs in turn (gather), starting at offset off, in one
// operation: all of them, or an error. At most 1024 buffers.
func (f *File) WritevAt(bufs [][]byte, off int64) (int, error) {
	const op = "File.WritevAt"
	if err := f.checkNotAppend(op); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errInvalid(op, "negative offset")
	}
	ptr, err := f.lock(op)
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	var pins bufPins
	iov, _ := iovecs(&pins, bufs)
	n, err := result(op, C.riogo_file_writev_at(ptr, iov, C.int(len(bufs)), C.uint64_t(off)))
	C.free(unsafe.Pointer(iov))
	pins.unpin()
	runtime.KeepAlive(bufs)
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// Sync commits the file's data and metadata to stable storage (fsync).
func (f *File) Sync() error {
	ptr, err := f.lock("File.Sync")
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	_, err = result("File.Sync", C.riogo_file_sync(ptr))
	return err
}

// Datasync commits the file's data, and the metadata needed to read it
// back, to stable storage (fdatasync).
func (f *File) Datasync() error {
	ptr, err := f.lock("File.Datasync")
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	_, err = result("File.Datasync", C.riogo_file_datasync(ptr))
	return err
}

// Allocate reserves length bytes at off (fallocate mode 0; the file grows
// to cover them). EOPNOTSUPP where the filesystem cannot.
func (f *File) Allocate(off, length int64) error {
	const op = "File.Allocate"
	if off < 0 || length < 0 {
		return errInvalid(op, "negative offset or length")
	}
	ptr, err := f.lock(op)
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	_, err = result(op, C.riogo_file_allocate(ptr, C.uint64_t(off), C.uint64_t(length)))
	return err
}

// Truncate sets the file's size (ftruncate).
func (f *File) Truncate(size int64) error {
	const op = "File.Truncate"
	if size < 0 {
		return errInvalid(op, "negative size")
	}
	ptr, err := f.lock(op)
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	_, err = result(op, C.riogo_file_truncate(ptr, C.uint64_t(size)))
	return err
}

// Size returns the file's size in bytes.
func (f *File) Size() (int64, error) {
	ptr, err := f.lock("File.Size")
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	return result("File.Size", C.riogo_file_size(ptr))
}

// Close closes the file, after the calls already running on it returned.
// It is idempotent: later calls return nil. The handle is freed even when
// close(2) reports an error, which is returned.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ptr == nil {
		return nil
	}
	ptr := f.ptr
	f.ptr = nil
	runtime.SetFinalizer(f, nil)
	_, err := result("File.Close", C.riogo_file_close(ptr))
	return err
}

// BufferAlignment is the alignment of AlignedBuffer's memory, enough for
// O_DIRECT on any file (RIO_BUF_ALIGN: a page).
const BufferAlignment = C.RIO_BUF_ALIGN

// AlignedBuffer returns a zeroed n-byte slice whose first byte is aligned
// to BufferAlignment, for files opened with O_DIRECT (whose lengths and
// offsets must be aligned too). It is ordinary Go memory.
func AlignedBuffer(n int) []byte {
	if n <= 0 {
		return []byte{}
	}
	b := make([]byte, n+BufferAlignment)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & (BufferAlignment - 1))
	return b[skip : skip+n : skip+n]
}
