// Package rio is the Go binding of librio, a Linux I/O library with an
// io_uring engine (and a pread/pwrite thread-pool fallback), positioned
// file I/O and a durable write-ahead log.
//
// It links the C library built in this repository (target/release/librio.so,
// `make` at the top level) with cgo. Every handle may be used from many
// goroutines at once. Close is idempotent and waits for calls already
// running on the handle; calls after Close fail with an error matching
// fs.ErrClosed. Handles that are not closed are closed by a finalizer.
//
// Errors are *Error values wrapping a syscall.Errno, so errors.Is(err,
// fs.ErrNotExist) and errors.Is(err, syscall.EINVAL) work, and carrying the
// library's message (which names the function, the path or argument, and
// the cause). The message is read inside the same cgo call as the failing
// function, because it is kept per OS thread and a goroutine may move to
// another thread between two cgo calls.
package rio

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lrio -Wl,-rpath,${SRCDIR}/../../target/release
#include "riogo.h"
*/
import "C"

import (
	"io/fs"
	"syscall"
	"unsafe"
)

// Version returns the version of the loaded library, e.g. "0.1.0".
func Version() string { return C.GoString(C.rio_version()) }

// Error is a failed librio call.
type Error struct {
	Op    string        // the Go method that failed, e.g. "File.ReadAt"
	Errno syscall.Errno // the cause, as an errno
	Msg   string        // the library's message; names the function, path or argument, and cause

	closed   bool  // the handle was already closed (matches fs.ErrClosed)
	sentinel error // a package error this one also matches (ErrWriteAtInAppendMode)
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return "rio " + e.Op + ": " + e.Errno.Error()
}

// Unwrap returns the errno, so errors.Is(err, fs.ErrNotExist),
// errors.Is(err, syscall.ENOENT) and errors.As(err, &errno) work.
func (e *Error) Unwrap() error { return e.Errno }

// Is reports whether the error is a use of a closed handle (fs.ErrClosed)
// or a package sentinel such as ErrWriteAtInAppendMode; everything else is
// matched through the errno (see Unwrap).
func (e *Error) Is(target error) bool {
	return (e.closed && target == fs.ErrClosed) || (e.sentinel != nil && target == e.sentinel)
}

// Timeout reports whether the error is a timeout (ETIMEDOUT, EAGAIN...).
func (e *Error) Timeout() bool { return e.Errno.Timeout() }

func errClosed(op, what string) error {
	return &Error{Op: op, Errno: syscall.EBADF, Msg: "rio " + op + ": " + what + " already closed", closed: true}
}

func errInvalid(op, what string) error {
	return &Error{Op: op, Errno: syscall.EINVAL, Msg: "rio " + op + ": " + what}
}

// result turns a wrapper's result into (value, error), freeing the message.
func result(op string, r C.riogo_ret) (int64, error) {
	if r.rc >= 0 {
		return int64(r.rc), nil
	}
	e := &Error{Op: op, Errno: syscall.Errno(-r.rc)}
	if r.msg != nil {
		e.Msg = C.GoString(r.msg)
		C.free(unsafe.Pointer(r.msg))
	}
	return int64(r.rc), e
}

// goString converts a NUL-terminated C char array of fixed size.
func goString(chars []C.char) string {
	b := make([]byte, 0, len(chars))
	for _, c := range chars {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
