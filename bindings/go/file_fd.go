package rio

/*
#include "riogo.h"
*/
import "C"

import (
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// NewFile returns a File doing I/O on the open descriptor fd, which stays
// the caller's: Close leaves it open, so the process's POSIX (fcntl)
// locks on the file survive. Its access mode, O_DIRECT and O_APPEND are
// read from the descriptor (fcntl F_GETFL). The caller must keep fd open
// until the File is closed. A bad fd is EBADF.
func (rt *Runtime) NewFile(fd uintptr) (*File, error) {
	return rt.newFile("Runtime.NewFile", fd, 0)
}

// NewOwnedFile is NewFile for a descriptor handed over to the File:
// Close closes it. On error the descriptor is not closed.
func (rt *Runtime) NewOwnedFile(fd uintptr) (*File, error) {
	return rt.newFile("Runtime.NewOwnedFile", fd, C.RIO_FD_OWNED)
}

func (rt *Runtime) newFile(op string, fd uintptr, flags C.uint32_t) (*File, error) {
	ptr, err := rt.lock(op)
	if err != nil {
		return nil, err
	}
	defer rt.mu.RUnlock()
	cfd := C.int(-1) // beyond int: never a descriptor, EBADF from the library
	if fd <= uintptr(^uint32(0)>>1) {
		cfd = C.int(fd)
	}
	var fp *C.rio_file_t
	if _, err := result(op, C.riogo_file_from_fd(ptr, cfd, flags, &fp)); err != nil {
		return nil, err
	}
	name, lerr := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(cfd)))
	if lerr != nil {
		name = "fd " + strconv.Itoa(int(cfd))
	}
	// The library has read F_GETFL already; the binding needs O_APPEND for
	// WriteAt's os.File behaviour.
	status, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(cfd), syscall.F_GETFL, 0)
	f := &File{ptr: fp, name: name, appendMode: errno == 0 && int(status)&os.O_APPEND != 0}
	runtime.SetFinalizer(f, (*File).Close)
	return f, nil
}

// WriteDurable writes all of p at offset off and returns len(p) only once
// the bytes, and the metadata needed to read them back (a grown size), are
// on stable storage (rio_file_write_durable: O_DIRECT for the aligned
// middle, chunks in flight together, one fdatasync). On error nothing is
// promised durable. A file opened with O_APPEND fails with EINVAL.
func (f *File) WriteDurable(p []byte, off int64) (int, error) {
	const op = "File.WriteDurable"
	if off < 0 {
		return 0, errInvalid(op, "negative offset")
	}
	ptr, err := f.lock(op)
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	var buf unsafe.Pointer
	if len(p) > 0 {
		buf = unsafe.Pointer(&p[0])
	}
	n, err := result(op, C.riogo_file_write_durable(ptr, buf, C.size_t(len(p)), C.uint64_t(off)))
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
