package rio_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	rio "librio/bindings/go"
)

func TestSubmitBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		a, _ := create(t, rt, "a")
		b, _ := create(t, rt, "b")
		other := openRuntime(t, rio.BackendThreadPool)
		c, err := other.Create(filepath.Join(t.TempDir(), "c")) // another runtime's file
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()

		var ops []rio.Op
		for i := 0; i < 64; i++ {
			f := []*rio.File{a, b, c}[i%3]
			ops = append(ops, rio.Op{Code: rio.OpWrite, File: f, Buf: pattern(i, 0, 4096), Offset: int64(i/3) * 4096})
		}
		if err := rt.SubmitBatch(ops); err != nil {
			t.Fatal(err)
		}
		for i, op := range ops {
			if op.N != 4096 || op.Err != nil {
				t.Fatalf("write %d: %d, %v", i, op.N, op.Err)
			}
		}
		if err := rt.SubmitBatch([]rio.Op{{Code: rio.OpFsync, File: a}, {Code: rio.OpFdatasync, File: b}}); err != nil {
			t.Fatal(err)
		}
		reads := make([]rio.Op, len(ops))
		for i := range ops {
			reads[i] = rio.Op{Code: rio.OpRead, File: ops[i].File, Buf: make([]byte, 4096), Offset: ops[i].Offset}
		}
		past := rio.Op{Code: rio.OpRead, File: a, Buf: make([]byte, 100), Offset: 22*4096 - 10}
		reads = append(reads, past)
		if err := rt.SubmitBatch(reads); err != nil {
			t.Fatal(err)
		}
		for i := range ops {
			if reads[i].N != 4096 || reads[i].Err != nil || !bytes.Equal(reads[i].Buf, ops[i].Buf) {
				t.Fatalf("read %d: %d, %v", i, reads[i].N, reads[i].Err)
			}
		}
		if last := reads[len(reads)-1]; last.N != 10 || last.Err != io.EOF {
			t.Fatalf("read past end: %d, %v", last.N, last.Err)
		}

		// Per-op failure: writing a read-only file.
		r, err := rt.OpenReadOnly(a.Name())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		mixed := []rio.Op{{Code: rio.OpWrite, File: r, Buf: []byte("x")}, {Code: rio.OpWrite, File: b, Buf: []byte("y")}}
		if err := rt.SubmitBatch(mixed); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, mixed[0].Err, syscall.EBADF, "ops[0]")
		if mixed[1].Err != nil || mixed[1].N != 1 {
			t.Fatalf("op 1: %v", mixed[1].Err)
		}

		// Malformed batches are rejected whole.
		err = rt.SubmitBatch([]rio.Op{{Code: rio.OpWrite, File: b, Buf: []byte("z")}, {Code: 99, File: b}})
		wantErrno(t, err, syscall.EINVAL, "ops[1]")
		err = rt.SubmitBatch([]rio.Op{{Code: rio.OpRead, File: nil}})
		wantErrno(t, err, syscall.EINVAL, "ops[0]")
		err = rt.SubmitBatch([]rio.Op{{Code: rio.OpRead, File: b, Buf: make([]byte, 1), Offset: -1}})
		wantErrno(t, err, syscall.EINVAL, "negative")
		buf := make([]byte, 1)
		if n, _ := b.ReadAt(buf, 0); n != 1 || buf[0] == 'z' {
			t.Fatal("a rejected batch ran")
		}
		if err := rt.SubmitBatch(nil); err != nil {
			t.Fatal(err)
		}
		c.Close()
		err = rt.SubmitBatch([]rio.Op{{Code: rio.OpFsync, File: c}})
		if !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("batch on a closed file: %v", err)
		}
	})
}
