package rio

/*
#include "riogo.h"
*/
import "C"

import (
	"io"
	"runtime"
	"sort"
	"syscall"
	"unsafe"
)

// OpCode is the kind of a batched operation.
type OpCode uint32

const (
	OpRead      OpCode = C.RIO_OP_READ      // read len(Buf) bytes at Offset into Buf
	OpWrite     OpCode = C.RIO_OP_WRITE     // write Buf at Offset
	OpFsync     OpCode = C.RIO_OP_FSYNC     // fsync the file (Buf and Offset unused)
	OpFdatasync OpCode = C.RIO_OP_FDATASYNC // fdatasync the file
)

// Op is one operation of a batch (Runtime.SubmitBatch).
type Op struct {
	Code   OpCode
	File   *File // may belong to any runtime
	Buf    []byte
	Offset int64

	N   int   // out: bytes transferred
	Err error // out: nil, io.EOF for a read that ended at end of file (N < len(Buf)), or a *Error
}

// SubmitBatch submits ops together (one io_uring submission) and waits for
// all of them, setting every op's N and Err. It returns an error, and runs
// nothing, when the batch is malformed (nil or closed file, unknown code,
// negative offset, O_DIRECT misalignment). Operations of one batch may run
// in any order relative to each other: put an fsync in a later batch to
// order it after writes.
func (rt *Runtime) SubmitBatch(ops []Op) error {
	const op = "Runtime.SubmitBatch"
	if len(ops) == 0 {
		return nil
	}
	// Hold every file's read lock, each once and in address order (so that
	// two batches and a Close cannot deadlock), for the whole call.
	files := make([]*File, 0, len(ops))
	for i := range ops {
		if ops[i].File == nil {
			return errInvalid(op, "ops["+itoa(i)+"].File is nil")
		}
		if ops[i].Offset < 0 {
			return errInvalid(op, "ops["+itoa(i)+"].Offset is negative")
		}
		files = append(files, ops[i].File)
	}
	sort.Slice(files, func(a, b int) bool {
		return uintptr(unsafe.Pointer(files[a])) < uintptr(unsafe.Pointer(files[b]))
	})
	var locked []*File
	defer func() {
		for _, f := range locked {
			f.mu.RUnlock()
		}
	}()
	for i, f := range files {
		if i > 0 && f == files[i-1] {
			continue
		}
		if _, err := f.lock(op); err != nil {
			return err
		}
		locked = append(locked, f)
	}
	ptr, err := rt.lock(op)
	if err != nil {
		return err
	}
	defer rt.mu.RUnlock()

	// The rio_op_t array lives in C memory (see pin.go).
	mem := C.calloc(C.size_t(len(ops)), C.size_t(unsafe.Sizeof(C.rio_op_t{})))
	if mem == nil {
		panic("rio: out of memory")
	}
	defer C.free(mem)
	cops := unsafe.Slice((*C.rio_op_t)(mem), len(ops))
	var pins bufPins
	for i := range ops {
		c := &cops[i]
		c.opcode = C.uint32_t(ops[i].Code)
		c.file = ops[i].File.ptr
		*(*uintptr)(unsafe.Pointer(&c.buf)) = bufAddr(&pins, ops[i].Buf)
		c.len = C.uint64_t(len(ops[i].Buf))
		c.offset = C.uint64_t(ops[i].Offset)
	}
	_, err = result(op, C.riogo_submit_batch(ptr, (*C.rio_op_t)(mem), C.size_t(len(ops))))
	pins.unpin()
	runtime.KeepAlive(ops)
	if err != nil {
		return err
	}
	for i := range ops {
		res := int64(cops[i].result)
		ops[i].N, ops[i].Err = 0, nil
		switch {
		case res < 0:
			ops[i].Err = &Error{Op: op, Errno: syscall.Errno(-res),
				Msg: "rio " + op + ": ops[" + itoa(i) + "]: " + syscall.Errno(-res).Error()}
		default:
			ops[i].N = int(res)
			if ops[i].Code == OpRead && ops[i].N < len(ops[i].Buf) {
				ops[i].Err = io.EOF
			}
		}
	}
	return nil
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}
